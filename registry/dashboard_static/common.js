// Shared by both pages: fetching (with the read token when one is set), polling, DOM helpers.
"use strict";

const Runway = (() => {
  const REFRESH_MS = 3000;
  const SVG = "http://www.w3.org/2000/svg";

  // A read token, when reads need one: open a page once with #token=<token>.
  function token() {
    const found = location.hash.match(/token=([^&]+)/);
    if (found) localStorage.setItem("runway-token", decodeURIComponent(found[1]));
    return localStorage.getItem("runway-token");
  }

  async function getJSON(url) {
    const headers = {};
    const tok = token();
    if (tok) headers.Authorization = "Bearer " + tok;
    const r = await fetch(url, { headers, cache: "no-store" });
    if (!r.ok) {
      let detail = r.statusText;
      try { detail = JSON.stringify((await r.json()).detail); } catch (e) { /* not JSON */ }
      const hint = r.status === 401 ? " (open the page with #token=<read token>)" : "";
      throw new Error(`${r.status} ${detail}${hint}`);
    }
    return r.json();
  }

  function banner(text) {
    const b = document.getElementById("banner");
    b.hidden = !text;
    b.textContent = text || "";
  }

  // Runs `refresh` now and every REFRESH_MS after the previous run ended.
  function poll(refresh) {
    const run = async () => {
      try {
        await refresh();
        banner(null);
        document.getElementById("updated").textContent =
          "updated " + new Date().toLocaleTimeString();
      } catch (e) {
        banner("cannot refresh: " + (e.message || e));
      }
      setTimeout(run, REFRESH_MS);
    };
    run();
  }

  // el("td", {class: "num"}, "text", child...): text children are text nodes, never HTML.
  function make(doc, tag, attrs, children) {
    const node = doc;
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }
  const el = (tag, attrs, ...children) => make(document.createElement(tag), tag, attrs, children);
  const svg = (tag, attrs, ...children) =>
    make(document.createElementNS(SVG, tag), tag, attrs, children);

  const dash = "–";
  const time = (ms) => ms == null ? dash : new Date(ms).toISOString().slice(0, 19).replace("T", " ") + "Z";
  function ago(ms) {
    if (ms == null) return "";
    const s = Math.round((Date.now() - ms) / 1000);
    if (Math.abs(s) < 90) return `${s}s ago`;
    if (Math.abs(s) < 5400) return `${Math.round(s / 60)} min ago`;
    if (Math.abs(s) < 129600) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }
  const num = (x, digits = 3) => x == null ? dash : Number(x).toFixed(digits);
  const pct = (x) => x == null ? dash : (100 * x).toFixed(1) + " %";
  function duration(ms) {
    if (ms == null) return dash;
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 120000) return (ms / 1000).toFixed(1) + " s";
    if (ms < 7200000) return (ms / 60000).toFixed(1) + " min";
    return (ms / 3600000).toFixed(1) + " h";
  }
  function count(x) {
    if (x == null) return dash;
    if (x >= 1e6) return (x / 1e6).toFixed(2) + " M";
    if (x >= 1e4) return (x / 1e3).toFixed(1) + " k";
    return Math.round(x).toLocaleString("en");
  }
  const badge = (state) => el("span", { class: "badge state-" + state, "data-state": state }, state);
  const modelLink = (id) => el("a", { href: "model?id=" + encodeURIComponent(id) }, id);

  // The retrain agent's breaker and queue (its /health), or why it is not shown.
  function retrainPanel(node, retrain) {
    node.replaceChildren();
    if (!retrain || !retrain.configured) {
      node.append(el("span", { class: "muted" },
        "retrain agent: not configured (RUNWAY_DASHBOARD_RETRAIN_HEALTH_URL)"));
      return;
    }
    if (!retrain.ok) {
      node.append(el("span", { class: "bad", id: "retrain-down" },
        `retrain agent unreachable at ${retrain.url}: ${retrain.error}`));
      return;
    }
    const h = retrain.health;
    node.append(
      el("span", {}, "retrain agent: "),
      el("span", { class: "breaker breaker-" + h.breaker, id: "breaker" }, "breaker " + h.breaker),
      el("span", {}, ` · queue ${h.queue_depth} · in flight ${h.models_in_flight}` +
        ` · breaker opened ${h.breaker_opened}× · orchestrator calls ${h.orchestrator_calls}` +
        (h.breaker !== "closed" ? ` · half-open in ${h.seconds_until_half_open}s` : "")),
    );
  }

  return { poll, getJSON, el, svg, time, ago, num, pct, duration, count, badge, modelLink,
    retrainPanel, dash };
})();
