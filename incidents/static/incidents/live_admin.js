// Live admin pages: the incident list counts new incidents ("N new, refresh") and updates the
// rows it shows; an incident's page adds its new events and timeline entries; the breaker list
// updates its state badges. All over /ws/live/ with the admin session.
"use strict";

(function () {
  const path = location.pathname;
  const incidentPage = path.match(/^\/admin\/incidents\/incident\/(\d+)\/change\/$/);
  const incidentList = path === "/admin/incidents/incident/";
  const breakerList = path === "/admin/resilience/breaker/";
  if (!incidentPage && !incidentList && !breakerList) return;

  let newCount = 0;
  let after = null;
  let seenEvents = null;

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/ws/live/`);
    socket.onopen = () => {
      const subscription = { type: "subscribe", topics: [breakerList ? "breaker" : "incident"] };
      if (incidentPage) subscription.incident = Number(incidentPage[1]);
      if (after !== null) subscription.after = after;
      socket.send(JSON.stringify(subscription));
    };
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "subscribed") document.body.dataset.live = "subscribed"; // pages (and tests) can tell
      if (frame.type !== "message") return;
      after = Math.max(after || 0, frame.id);
      if (incidentList) onIncidentListMessage(frame);
      else if (incidentPage) onIncidentPageMessage(frame);
      else onBreakerMessage(frame.payload);
    };
    socket.onclose = () => {
      delete document.body.dataset.live;
      setTimeout(connect, 2000);
    };
  }

  function badge() {
    let element = document.getElementById("live-new");
    if (!element) {
      element = document.createElement("a");
      element.id = "live-new";
      element.href = location.href;
      element.className = "live-badge";
      document.querySelector("#changelist, #content-main").prepend(element);
    }
    return element;
  }

  function onIncidentListMessage(frame) {
    if (frame.topic === "incident.created") {
      newCount += 1;
      badge().textContent = `${newCount} new, refresh`;
      return;
    }
    const checkbox = document.querySelector(`input.action-select[value="${frame.payload.id}"]`);
    if (!checkbox) return;
    const row = checkbox.closest("tr");
    const count = row.querySelector(".field-event_count");
    if (count) count.textContent = frame.payload.event_count;
    const status = row.querySelector(".field-status_badge span, .field-status_badge");
    if (status) status.textContent = frame.payload.status;
  }

  async function onIncidentPageMessage(frame) {
    const id = Number(incidentPage[1]);
    const box = liveBox();
    if (frame.payload.change) {
      const entry = document.createElement("li");
      entry.textContent = `${new Date(frame.at).toLocaleTimeString()} ${frame.payload.change} by ${frame.payload.actor}`;
      box.querySelector(".live-timeline").prepend(entry);
    }
    const response = await fetch(`/api/v1/events/?incident=${id}&limit=20`, { credentials: "same-origin" });
    if (!response.ok) return;
    const events = (await response.json()).results;
    if (seenEvents === null) seenEvents = new Set();
    for (const item of events.reverse()) {
      if (seenEvents.has(item.id)) continue;
      seenEvents.add(item.id);
      const entry = document.createElement("li");
      entry.dataset.event = item.id;
      entry.textContent = `${new Date(item.received_at).toLocaleTimeString()} ${item.level} ${item.title || item.message}`;
      box.querySelector(".live-events").prepend(entry);
    }
  }

  function liveBox() {
    let box = document.getElementById("live-incident");
    if (!box) {
      box = document.createElement("fieldset");
      box.id = "live-incident";
      box.className = "module";
      box.innerHTML = '<h2>Live</h2><h3>New events</h3><ul class="live-events"></ul><h3>Timeline</h3><ul class="live-timeline"></ul>';
      document.querySelector("#content-main").prepend(box);
    }
    return box;
  }

  function onBreakerMessage(transition) {
    for (const link of document.querySelectorAll("#result_list th.field-name a, #result_list td.field-name a")) {
      if (link.textContent.trim() !== transition.breaker) continue;
      const badge = link.closest("tr").querySelector(".field-state .breaker-badge");
      if (!badge) continue;
      badge.className = `breaker-badge breaker-${transition.to_state}`;
      badge.textContent = transition.to_state.replace("_", " ");
    }
  }

  // Loaded in the head by the admin's Media: the page must exist before frames update it.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", connect);
  else connect();
})();
