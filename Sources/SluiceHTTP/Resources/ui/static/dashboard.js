// Sluice dashboard: keeps the overview current without reloading the page.
// No framework, no inline script (the Content-Security-Policy forbids it): this file is all.
"use strict";

// A job's page follows its timeline over Server-Sent Events until the job finishes.
(function () {
  const timeline = document.getElementById("timeline");
  if (!timeline || !timeline.dataset.events || !window.EventSource) return;
  let shown = Number(timeline.dataset.count || "0");
  const source = new EventSource(timeline.dataset.events);
  function setState(status) {
    const badge = document.getElementById("job-state");
    if (!badge || !status) return;
    badge.textContent = status;
    badge.className = "state state-" + status;
  }
  source.addEventListener("status", (event) => {
    const index = Number(event.lastEventId);
    if (!(index > shown)) return; // the stream starts from the first entry: skip those shown
    shown = index;
    const entry = JSON.parse(event.data);
    const item = document.createElement("li");
    const time = document.createElement("time");
    time.textContent = new Date(entry.at * 1000).toISOString();
    const state = document.createElement("span");
    state.className = "state state-" + entry.status;
    state.textContent = entry.status;
    item.append(time, " ", state);
    if (entry.info) {
      const info = document.createElement("span");
      info.className = "info";
      info.textContent = entry.info;
      item.append(" ", info);
    }
    timeline.appendChild(item);
    setState(entry.status);
  });
  source.addEventListener("end", (event) => {
    source.close();
    setState(JSON.parse(event.data).status);
    const cancel = document.getElementById("cancel");
    if (cancel) cancel.remove();
    timeline.dataset.ended = "true";
  });
})();

(function () {
  const table = document.getElementById("lanes");
  if (!table) return;
  const source = table.dataset.source;
  const svgNS = "http://www.w3.org/2000/svg";

  function rate(value) {
    if (value === null || value === undefined || !isFinite(value)) return "–";
    return value < 10 ? value.toFixed(2) : value.toFixed(0);
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds) || seconds < 0) return "–";
    if (seconds < 1) return (seconds * 1000).toFixed(0) + " ms";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    if (seconds < 3600) return (seconds / 60).toFixed(1) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }

  // The same scale as the server's: a 120×24 box, the newest point at the right.
  function points(values) {
    if (!values.length) return "";
    const top = Math.max(1, ...values.filter(isFinite));
    const step = values.length > 1 ? 120 / (values.length - 1) : 0;
    return values.map((v, i) => (i * step).toFixed(1) + "," + (23 - 22 * Math.max(0, v) / top).toFixed(1)).join(" ");
  }

  function spark(label, colour, field) {
    const svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", "0 0 120 24");
    svg.setAttribute("width", "120");
    svg.setAttribute("height", "24");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    const line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("data-field", field);
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colour);
    line.setAttribute("stroke-width", "1.5");
    svg.appendChild(line);
    return svg;
  }

  function newRow(name) {
    const row = document.createElement("tr");
    row.dataset.lane = name;
    const first = document.createElement("td");
    first.className = "lane";
    const link = document.createElement("a");
    link.href = "/ui/jobs?lane=" + encodeURIComponent(name);
    link.textContent = name;
    first.appendChild(link);
    row.appendChild(first);
    for (const field of ["ready", "leased", "delayed", "oldest", "in", "out", "errors", "limited"]) {
      const cell = document.createElement("td");
      cell.className = "num";
      cell.dataset.field = field;
      row.appendChild(cell);
    }
    for (const [label, colour, field] of [["ready jobs", "#2563eb", "depth"], ["jobs out per second", "#059669", "completion"]]) {
      const cell = document.createElement("td");
      cell.appendChild(spark(label, colour, field));
      row.appendChild(cell);
    }
    return row;
  }

  function update(lanes) {
    const body = table.tBodies[0];
    const rows = new Map(Array.from(body.rows, (row) => [row.dataset.lane, row]));
    for (const lane of lanes) {
      let row = rows.get(lane.lane);
      if (!row) row = newRow(lane.lane);
      body.appendChild(row); // keeps the server's order (by lane name)
      rows.delete(lane.lane);
      const set = (field, text) => { row.querySelector('[data-field="' + field + '"]').textContent = text; };
      set("ready", String(lane.ready));
      set("leased", String(lane.leased));
      set("delayed", String(lane.delayed));
      set("oldest", age(lane.oldest_ready_age_seconds));
      set("in", rate(lane.arrival_rate));
      set("out", rate(lane.completion_rate));
      set("errors", rate(lane.errors_per_minute));
      set("limited", rate(lane.rate_limited_per_minute));
      row.querySelector('[data-field="depth"]').setAttribute("points", points(lane.depth_history));
      row.querySelector('[data-field="completion"]').setAttribute("points", points(lane.completion_history));
    }
    for (const row of rows.values()) row.remove();
    const empty = document.getElementById("no-lanes");
    if (empty) empty.hidden = lanes.length > 0;
    table.dataset.updated = String(Date.now());
  }

  async function refresh() {
    try {
      const answer = await fetch(source, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (answer.redirected || answer.status === 401 || answer.status === 403) { window.location.assign("/ui/login"); return; }
      if (answer.ok) update((await answer.json()).lanes);
    } catch (error) {
      // A failed poll (a restart, a dropped connection) is retried at the next tick.
    }
  }

  setInterval(refresh, Math.max(500, Number(table.dataset.refresh || "2000")));
})();

// A live part of a page (the Scaling page's pools) is fetched again, as the server renders it,
// every data-refresh ms and put in place: the charts are the server's SVG, drawn once.
(function () {
  const live = document.querySelector("[data-live]");
  if (!live) return;
  const every = Math.max(500, Number(live.dataset.refresh || "2000"));
  async function refresh() {
    try {
      const answer = await fetch(live.dataset.live, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (answer.redirected || answer.status === 401 || answer.status === 403) { window.location.assign("/ui/login"); return; }
      if (!answer.ok) return;
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      live.replaceChildren(...page.body.childNodes);
      live.dataset.updated = String(Date.now());
    } catch (error) {
      // A failed fetch (a restart, a dropped connection) is retried at the next tick.
    }
  }
  setInterval(refresh, every);
})();
