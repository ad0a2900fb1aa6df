// The model page: charts over the staleness history, verdicts, versions, graph, retrains; polled.
"use strict";

(() => {
  const R = Runway;
  const id = new URLSearchParams(location.search).get("id") || "";
  document.getElementById("model-id").textContent = id;
  document.title = `Runway · ${id}`;
  const cell = (text, cls) => R.el("td", cls ? { class: cls } : {}, text);
  let drawn = null;  // what the charts and graph were drawn from: redrawn only when it changes

  function header(m) {
    const state = m.latest ? m.latest.state : "UNKNOWN";
    document.getElementById("model-state").replaceChildren(R.badge(state));
    const facts = [m.model.task, m.model.owner && `owner ${m.model.owner}`,
      m.latest && `score ${R.num(m.latest.score)}`,
      m.latest && `uncertainty ${R.num(m.latest.uncertainty)}`,
      m.latest && `version ${m.latest.model_version}`].filter(Boolean).join(" · ");
    document.getElementById("reason").replaceChildren(
      R.el("span", { class: "muted" }, facts + (facts ? " — " : "")),
      m.latest ? m.latest.reason : "No verdict recorded yet.");
  }

  function verdicts(list) {
    const table = document.getElementById("verdicts");
    table.dataset.count = list.length;
    table.tBodies[0].replaceChildren(...list.map((v) => R.el("tr", { "data-state": v.state },
      cell(R.time(v.event_time)), cell(R.ago(v.emitted_at)), cell(v.model_version),
      R.el("td", {}, R.badge(v.state)), cell(R.num(v.score), "num"), cell(v.basis.join(", ")),
      cell(R.num(v.uncertainty), "num"), cell(v.reason, "reason"))));
  }

  function versions(list) {
    const days = (ms) => ms == null ? R.dash : (ms / 86400000).toFixed(1) + " d";
    document.querySelector("#versions tbody").replaceChildren(...list.map((v) => R.el("tr", {},
      cell(v.version), cell(v.task), cell(R.time(v.trained_at)), cell(R.time(v.deployed_at)),
      cell(Object.entries(v.baseline_metrics).map(([k, x]) => `${k} ${x}`).join(", ") || R.dash),
      cell(days(v.max_age_ms)))));
  }

  function retrains(list) {
    const steps = (r) => r.history.map((h) => `${h.status} ${R.time(h.at).slice(11)}` +
      (h.detail ? ` (${h.detail})` : "")).join(" → ");
    document.querySelector("#retrains tbody").replaceChildren(...list.map((r) => R.el("tr",
      { "data-status": r.status }, cell(r.request_id), cell(r.model_version),
      R.el("td", {}, R.el("span", { class: "status status-" + r.status }, r.status)),
      cell(R.time(r.created_at)), cell(R.time(r.updated_at)), cell(steps(r)))));
    if (!list.length) {
      document.querySelector("#retrains tbody").append(
        R.el("tr", {}, R.el("td", { colspan: 6, class: "muted" }, "none")));
    }
  }

  R.poll(async () => {
    if (!id) throw new Error("no model id: open model?id=<model id>");
    const m = await R.getJSON("api/model?id=" + encodeURIComponent(id));
    header(m);
    R.retrainPanel(document.getElementById("retrain"), m.retrain);
    const key = JSON.stringify([m.charts, m.graph]);
    if (key !== drawn) {
      document.getElementById("charts").replaceChildren(...m.charts.map(Charts.figure));
      const g = document.getElementById("graph");
      g.replaceChildren(Charts.graph(m.graph));
      if (m.graph.truncated) g.append(R.el("p", { class: "muted" }, "(nearest nodes only)"));
      drawn = key;
    }
    verdicts(m.verdicts);
    versions(m.versions);
    retrains(m.retrains);
    if (m.warnings.length) throw new Error(m.warnings.join("; "));
  });
})();
