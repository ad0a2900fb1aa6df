// The fleet page: every model's latest verdict and live figures; sortable, filterable, polled.
"use strict";

(() => {
  const R = Runway;
  const STATES = ["STALE", "WARNING", "FRESH", "UNKNOWN"];
  const RANK = { STALE: 0, WARNING: 1, FRESH: 2, UNKNOWN: 3 };
  const view = { rows: [], key: "state", dir: 1 };
  const stateFilter = document.getElementById("state-filter");
  const textFilter = document.getElementById("text-filter");

  function sortValue(row, key) {
    if (key === "state") return RANK[row.state] * 10 - (row.score ?? 0);  // worst first
    if (key === "basis") return row.basis.join(",");
    return row[key];
  }

  function compare(a, b) {
    const x = sortValue(a, view.key), y = sortValue(b, view.key);
    if (x == null && y == null) return a.model_id < b.model_id ? -1 : 1;
    if (x == null) return 1;  // unknown figures last, whatever the direction
    if (y == null) return -1;
    if (x < y) return -view.dir;
    if (x > y) return view.dir;
    return a.model_id < b.model_id ? -1 : 1;
  }

  function matches(row) {
    if (stateFilter.value && row.state !== stateFilter.value) return false;
    const text = textFilter.value.trim().toLowerCase();
    if (!text) return true;
    return [row.model_id, row.owner, row.reason, row.task, row.model_version]
      .some((v) => v && String(v).toLowerCase().includes(text));
  }

  function render() {
    const shown = view.rows.filter(matches).sort(compare);
    const body = document.querySelector("#fleet tbody");
    body.replaceChildren(...shown.map((row) => R.el("tr",
      { "data-model-id": row.model_id, "data-state": row.state, title: row.reason || "" },
      R.el("td", {}, R.badge(row.state)),
      R.el("td", {}, R.modelLink(row.model_id)),
      R.el("td", { class: "num" }, R.num(row.score)),
      R.el("td", {}, row.basis.join(", ") || R.dash),
      R.el("td", { class: "num" }, R.num(row.uncertainty)),
      R.el("td", { class: "num" }, R.pct(row.label_coverage)),
      R.el("td", { class: "num" }, R.duration(row.label_delay_p95_ms)),
      R.el("td", { class: "num" }, R.count(row.predictions_per_hour)),
      R.el("td", { title: R.time(row.last_verdict_at) }, R.ago(row.last_verdict_at)),
    )));
    document.getElementById("shown").textContent = `${shown.length} of ${view.rows.length} shown`;
    for (const th of document.querySelectorAll("#fleet th")) {
      th.classList.toggle("sorted", th.dataset.key === view.key);
      th.dataset.dir = th.dataset.key === view.key ? (view.dir > 0 ? "asc" : "desc") : "";
    }
  }

  function renderCounts(counts) {
    const node = document.getElementById("counts");
    node.replaceChildren(...STATES.map((s) => {
      const box = R.el("button", { class: "count state-" + s, "data-state": s, type: "button" },
        R.el("span", { class: "n" }, counts[s] ?? 0), R.el("span", {}, s));
      box.addEventListener("click", () => {
        stateFilter.value = stateFilter.value === s ? "" : s;
        render();
      });
      return box;
    }));
  }

  for (const th of document.querySelectorAll("#fleet th")) {
    th.addEventListener("click", () => {
      view.dir = view.key === th.dataset.key ? -view.dir : 1;
      view.key = th.dataset.key;
      render();
    });
  }
  stateFilter.addEventListener("change", render);
  textFilter.addEventListener("input", render);

  R.poll(async () => {
    const fleet = await R.getJSON("api/fleet");
    view.rows = fleet.models;
    renderCounts(fleet.counts);
    R.retrainPanel(document.getElementById("retrain"), fleet.retrain);
    render();
    if (fleet.warnings.length) throw new Error(fleet.warnings.join("; "));
  });
})();
