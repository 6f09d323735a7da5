// The live dashboard: a websocket to /ws/live/ keeps the page current; when it cannot connect,
// the page polls the API and says so, and goes back to live by itself once the socket opens.
"use strict";

const SEVERITIES = { 10: "info", 20: "low", 30: "medium", 40: "high", 50: "critical" };
const POLL_MS = 5000;
const RETRY_MAX_MS = 10000;

const live = {
  after: Number(document.body.dataset.liveAfter),
  received: [], // ids of the messages shown, in order (tests read it)
  socket: null,
  retryMs: 500,
  pollTimer: null,
};
window.liveConsole = live;

function setStatus(text, kind) {
  const status = document.getElementById("live-status");
  status.textContent = text;
  status.className = "live-status " + kind;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/ws/live/`);
  live.socket = socket;
  socket.onopen = () => {
    socket.send(JSON.stringify({ type: "subscribe", topics: ["*"], after: live.after }));
  };
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "subscribed") {
      live.retryMs = 500;
      stopPolling();
      setStatus("live", "live");
    } else if (frame.type === "message") {
      live.after = Math.max(live.after, frame.id); // a coalesced update may arrive after newer messages
      live.received.push(frame.id);
      show(frame);
    }
  };
  socket.onclose = () => {
    live.socket = null;
    startPolling();
    setTimeout(connect, live.retryMs);
    live.retryMs = Math.min(live.retryMs * 2, RETRY_MAX_MS);
  };
}

function show(frame) {
  const [kind] = frame.topic.split(".");
  if (kind === "incident") showIncident(frame.payload, frame.topic === "incident.created");
  else if (kind === "breaker") showBreaker(frame.payload);
  else if (kind === "alert") showAlert(frame.payload);
  else if (kind === "degradation") showDegradation(frame.payload.level);
}

function showIncident(incident, created) {
  let row = document.querySelector(`tr[data-incident="${incident.id}"]`);
  if (!row) {
    row = incidentRow(incident);
    document.getElementById("incidents").prepend(row);
  }
  if (created) row.classList.add("new");
  row.querySelector(".status").textContent = incident.status;
  row.querySelector(".events").textContent = incident.event_count;
  if (incident.last_seen) row.querySelector(".seen").textContent = new Date(incident.last_seen).toTimeString().slice(0, 8);
  scheduleSeverityCounts();
}

let countsTimer = null;
function scheduleSeverityCounts() {
  // At most every two seconds, however many incidents change.
  if (!countsTimer) countsTimer = setTimeout(() => { countsTimer = null; refreshSeverityCounts(); }, 2000);
}

function incidentRow(incident) {
  const row = document.createElement("tr");
  const severity = SEVERITIES[incident.severity] || "info";
  row.dataset.incident = incident.id;
  row.innerHTML = `<td class="sev sev-${severity}">${severity}</td><td class="title"><a></a></td>
    <td class="status"></td><td class="events"></td><td class="seen"></td><td class="actions"></td>`;
  const link = row.querySelector(".title a");
  link.href = `/admin/incidents/incident/${incident.id}/change/`;
  link.textContent = incident.title; // text, never HTML: titles come from clients
  if (document.body.dataset.canTriage === "1") {
    row.querySelector(".actions").innerHTML =
      '<button data-action="acknowledge">Acknowledge</button> <button data-action="resolve">Resolve</button>';
  }
  return row;
}

function showBreaker(transition) {
  const name = transition.breaker || transition.name;
  const card = document.querySelector(`[data-breaker="${CSS.escape(name)}"]`);
  if (!card) return;
  const state = transition.to_state || transition.state;
  card.className = `breaker state-${state}`;
  card.querySelector(".state").textContent = state;
}

function showAlert(alert) {
  const list = document.getElementById("alerts");
  let item = list.querySelector(`[data-alert="${alert.id}"]`);
  if (alert.state !== "firing" || alert.acknowledged) {
    if (item) item.remove();
  } else {
    if (!item) {
      item = document.createElement("li");
      item.dataset.alert = alert.id;
      list.prepend(item);
    }
    item.textContent = `${alert.rule} ${alert.value}`;
  }
  const empty = list.querySelector(".empty");
  if (empty) empty.hidden = list.querySelectorAll("[data-alert]").length > 0;
}

function showDegradation(level) {
  const banner = document.getElementById("degradation");
  banner.hidden = level === "FULL";
  banner.className = `banner level-${level.toLowerCase()}`;
  document.getElementById("degradation-level").textContent = level;
}

async function refreshSeverityCounts() {
  // Counts are cheap to ask for, and asking keeps them exact whatever the stream coalesced.
  for (const severity of Object.values(SEVERITIES)) {
    const response = await api(`/api/v1/incidents/?status=open&severity=${severity}&limit=500`);
    if (!response.ok) return;
    const body = await response.json();
    const count = document.querySelector(`[data-severity="${severity}"]`);
    if (count) count.textContent = body.results.length + (body.next ? "+" : "");
  }
}

function api(url, options = {}) {
  return fetch(url, {
    credentials: "same-origin",
    ...options,
    headers: { Accept: "application/json", "X-CSRFToken": document.body.dataset.csrf, ...(options.headers || {}) },
  });
}

function startPolling() {
  if (live.pollTimer) return;
  setStatus("live updates degraded (polling)", "degraded");
  const poll = async () => {
    const response = await api("/api/v1/incidents/?limit=25");
    if (response.ok) (await response.json()).results.forEach((incident) => showIncident(incident, false));
  };
  poll();
  live.pollTimer = setInterval(poll, POLL_MS);
}

function stopPolling() {
  clearInterval(live.pollTimer);
  live.pollTimer = null;
}

async function drawEventRate() {
  const response = await api("/api/v1/stats/?minutes=30");
  if (!response.ok) return;
  const counts = (await response.json()).series.map((point) => point.count);
  const canvas = document.getElementById("event-rate");
  const context = canvas.getContext("2d");
  const top = Math.max(1, ...counts);
  context.clearRect(0, 0, canvas.width, canvas.height);
  const width = canvas.width / counts.length;
  context.fillStyle = "#c0392b";
  counts.forEach((count, index) => {
    const height = (count / top) * (canvas.height - 4);
    context.fillRect(index * width, canvas.height - height, Math.max(1, width - 1), height);
  });
}

// The breaker board's figures and sparklines: the failure rate of each breaker, sampled every few
// seconds since the page opened (window reports are a snapshot; the history lives here).
const breakerHistory = {};
const SPARK_POINTS = 60;

async function refreshBreakers() {
  const response = await api("/api/v1/circuit-breakers/");
  if (!response.ok) return;
  const breakers = (await response.json()).circuit_breakers;
  for (const [name, breaker] of Object.entries(breakers)) {
    const card = document.querySelector(`[data-breaker="${CSS.escape(name)}"]`);
    if (!card) continue;
    card.className = `breaker state-${breaker.state}`;
    card.querySelector(".state").textContent = breaker.state;
    card.querySelector(".rate").textContent = breaker.failure_rate === null ? "–" : `${breaker.failure_rate.toFixed(1)} %`;
    card.querySelector(".calls").textContent = breaker.calls;
    const history = (breakerHistory[name] = breakerHistory[name] || []);
    history.push(breaker.failure_rate || 0);
    if (history.length > SPARK_POINTS) history.shift();
    const step = 100 / (SPARK_POINTS - 1);
    card.querySelector(".sparkline polyline").setAttribute(
      "points",
      history.map((rate, index) => `${(index * step).toFixed(1)},${(20 - rate / 5).toFixed(1)}`).join(" "),
    );
  }
}

document.getElementById("incidents").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const id = button.closest("tr").dataset.incident;
  const response = await api(`/api/v1/incidents/${id}/${button.dataset.action}/`, { method: "POST" });
  const body = await response.json();
  if (response.ok) showIncident(body, false);
  else button.title = body.error;
});

connect();
drawEventRate();
setInterval(drawEventRate, 10000);
refreshBreakers();
setInterval(refreshBreakers, 5000);
