// SVG drawing for the model page: line charts over event time and the impact/lineage graph.
"use strict";

const Charts = (() => {
  const R = Runway;
  const W = 560, H = 220, PAD = { left: 64, right: 12, top: 12, bottom: 28 };

  function tick(v) {
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 100) return v.toFixed(0);
    return v.toFixed(a >= 1 ? 2 : 3);
  }

  // chart: {id, title, series: [{name, label, kind, points: [[t, v], ...]}]}; kind "data" is
  // drawn with a dot per point, the levels (baseline, warning, stale) as dashed lines.
  function line(chart) {
    const all = chart.series.flatMap((s) => s.points);
    const root = R.svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", "data-chart": chart.id,
      role: "img", "aria-label": chart.title });
    if (!chart.series.some((s) => s.kind === "data" && s.points.length)) {
      root.append(R.svg("text", { x: W / 2, y: H / 2, class: "empty" }, "no data yet"));
      return root;
    }
    const ts = all.map((p) => p[0]), vs = all.map((p) => p[1]);
    let t0 = Math.min(...ts), t1 = Math.max(...ts), v0 = Math.min(...vs), v1 = Math.max(...vs);
    if (t0 === t1) { t0 -= 1; t1 += 1; }
    if (v0 === v1) { v0 -= Math.abs(v0) * 0.1 || 1; v1 += Math.abs(v1) * 0.1 || 1; }
    const span = v1 - v0;
    v0 = v0 >= 0 ? Math.max(0, v0 - span * 0.05) : v0 - span * 0.05;  // counts stay >= 0
    v1 += span * 0.05;
    const x = (t) => PAD.left + (t - t0) / (t1 - t0) * (W - PAD.left - PAD.right);
    const y = (v) => H - PAD.bottom - (v - v0) / (v1 - v0) * (H - PAD.top - PAD.bottom);
    const axes = R.svg("g", { class: "axes" });
    for (let i = 0; i <= 4; i++) {
      const v = v0 + (v1 - v0) * i / 4;
      axes.append(R.svg("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }),
        R.svg("text", { x: PAD.left - 6, y: y(v) + 4, class: "ylabel" }, tick(v)));
    }
    axes.append(R.svg("text", { x: PAD.left, y: H - 8, class: "xlabel" }, R.time(t0)),
      R.svg("text", { x: W - PAD.right, y: H - 8, class: "xlabel end" }, R.time(t1)));
    root.append(axes);
    chart.series.forEach((s, i) => {
      if (!s.points.length) return;
      const g = R.svg("g", { class: `series kind-${s.kind} color-${i}`, "data-series": s.name,
        "data-points": s.points.length });
      const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
      g.append(R.svg("path", { d: d.join(" ") }));
      if (s.kind === "data") {
        for (const p of s.points) {
          g.append(R.svg("circle", { cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2.5,
            class: "pt" }, R.svg("title", {}, `${s.label} ${tick(p[1])} at ${R.time(p[0])}`)));
        }
      }
      root.append(g);
    });
    return root;
  }

  function legend(chart) {
    return R.el("div", { class: "legend" }, ...chart.series.map((s, i) =>
      R.el("span", { class: `key kind-${s.kind} color-${i}` }, R.el("i"), s.label)));
  }

  function figure(chart) {
    return R.el("figure", { class: "chart-box" }, R.el("figcaption", {}, chart.title),
      line(chart), legend(chart));
  }

  // g: {nodes: [{id, kind, column, row, state}], edges: [{from, to}], truncated}
  function graph(g) {
    const NW = 150, NH = 26, CW = 190, RH = 38;
    const cols = g.nodes.map((n) => n.column), rows = g.nodes.map((n) => n.row);
    const c0 = Math.min(...cols), width = (Math.max(...cols) - c0 + 1) * CW;
    const height = (Math.max(...rows) + 1) * RH + 10;
    const at = {};
    for (const n of g.nodes) at[n.id] = { x: (n.column - c0) * CW + 10, y: n.row * RH + 10 };
    const root = R.svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "graph-svg" });
    for (const e of g.edges) {
      const a = at[e.from], b = at[e.to];
      root.append(R.svg("line", { x1: a.x + NW, y1: a.y + NH / 2, x2: b.x, y2: b.y + NH / 2,
        class: "edge", "data-from": e.from, "data-to": e.to }));
    }
    for (const n of g.nodes) {
      const p = at[n.id];
      const label = n.id.length > 20 ? n.id.slice(0, 19) + "…" : n.id;
      const box = R.svg("g", { class: `node kind-${n.kind} state-${n.state || "none"}` +
          (n.column === 0 ? " self" : ""), "data-node": n.id, "data-kind": n.kind,
          transform: `translate(${p.x},${p.y})` },
        R.svg("title", {}, `${n.kind} ${n.id}` + (n.state ? ` (${n.state})` : "")),
        R.svg("rect", { width: NW, height: NH, rx: n.kind === "model" ? 4 : 13 }),
        R.svg("text", { x: 8, y: 17 }, label));
      if (n.kind === "model" && n.column !== 0) {
        const link = R.svg("a", { href: "model?id=" + encodeURIComponent(n.id) });
        link.append(box);
        root.append(link);
      } else {
        root.append(box);
      }
    }
    return root;
  }

  return { figure, graph };
})();
