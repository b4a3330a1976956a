// The feature browser: a searchable list of features and one feature's page at a time.
// data/index.js sets window.IMO_INDEX (one row per feature: id, density, max activation, label,
// top logits); data/chunk-NNN.js sets window.IMO_CHUNKS[NNN] to the full records of CHUNK
// features. Chunks are loaded as <script> elements on demand, since file:// pages cannot fetch.
// The address holds the state: #f=12 shows feature 12, #q=text fills the search box, #live shows
// the custom-text page (live.js, which needs `imo serve ... --sae`).
"use strict";

(function () {
  const INDEX = window.IMO_INDEX;
  const $ = (sel) => document.querySelector(sel);
  const SVG = "http://www.w3.org/2000/svg";

  // el("td", {class: "num"}, "1.5") -> <td class="num">1.5</td>; text is always set as text
  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const kid of kids) node.append(kid instanceof Node ? kid : String(kid));
    return node;
  }

  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  const num = (x, digits = 3) => (Math.abs(x) >= 1e-3 || x === 0 ? x.toFixed(digits) : x.toExponential(1));
  const pct = (x) => (x >= 1e-3 ? (100 * x).toFixed(2) + "%" : (100 * x).toExponential(1) + "%");

  function readHash() {
    const out = {};
    for (const part of location.hash.replace(/^#/, "").split("&")) {
      const [k, v] = part.split("=");
      if (k) out[k] = decodeURIComponent(v || "");
    }
    return out;
  }

  function hashFor(state) {
    return "#" + Object.entries(state).filter(([, v]) => v !== undefined && v !== "")
      .map(([k, v]) => k + "=" + encodeURIComponent(v)).join("&");
  }

  // --- the list and the search -------------------------------------------------------------

  // A number finds that feature first; any text finds features whose label (the tokens they
  // fire on most) or top logits contain it, ignoring case.
  function search(query) {
    const q = query.trim().toLowerCase();
    if (!q) return INDEX.features;
    const hits = INDEX.features.filter((r) => (r[3] + "\n" + r[4]).toLowerCase().includes(q));
    if (/^\d+$/.test(q) && +q < INDEX.features.length) {
      return [INDEX.features[+q], ...hits.filter((r) => r[0] !== +q)];
    }
    return hits;
  }

  function showList(query, current) {
    const hits = search(query);
    const list = $("#results");
    list.replaceChildren();
    for (const [id, density, , label] of hits.slice(0, 300)) {
      const a = el("a", {href: hashFor({f: id, q: query}), title: "density " + pct(density)},
        el("span", {class: "id"}, "#" + id), label);
      if (id === current) a.classList.add("current");
      list.append(el("li", {"data-id": id}, a));
    }
    $("#count").textContent = hits.length + " of " + INDEX.features.length + " features" +
      (hits.length > 300 ? " (first 300 shown)" : "");
  }

  // --- small figures -----------------------------------------------------------------------

  // bars of counts between edges; the bar holding `mark` (a value) is coloured
  function histogram(counts, edges, mark, xlabel) {
    const w = 320, h = 90, pad = 14, n = counts.length, top = Math.max(1, ...counts);
    const svg = svgEl("svg", {width: w, height: h + 2 * pad, role: "img", "aria-label": xlabel});
    const bw = (w - 2 * pad) / Math.max(1, n);
    counts.forEach((c, i) => {
      const bh = (h - pad) * c / top;
      const inside = mark !== null && mark >= edges[i] && (mark < edges[i + 1] || i === n - 1);
      svg.append(svgEl("rect", {class: inside ? "bar mark" : "bar", x: pad + i * bw, y: h - bh,
                                width: Math.max(1, bw - 1), height: bh}));
    });
    const label = (x, anchor, text) => {
      const t = svgEl("text", {x, y: h + 12, "text-anchor": anchor});
      t.textContent = text;
      svg.append(t);
    };
    if (n) {
      label(pad, "start", num(edges[0], 2));
      label(w - pad, "end", num(edges[n], 2));
    }
    label(w / 2, "middle", xlabel);
    return svg;
  }

  function logitTable(rows) {
    return el("table", {}, ...rows.map(([tok, v]) =>
      el("tr", {}, el("td", {class: "tok"}, tok.replace(/ /g, "␣")), el("td", {class: "num"}, num(v, 2)))));
  }

  // one context, each token's background the feature's activation relative to `top`; with
  // `effect` a second line colours each token by the rise in its loss when the feature is removed
  function example(ex, top, effectScale) {
    const line = (values, colour, what, fmt) => {
      const div = el("div", {class: "ex"}, el("span", {class: "what"}, what));
      ex.tokens.forEach((tok, i) => {
        const v = values[i];
        const span = el("span", {title: v === null ? "" : fmt(v)}, tok);
        if (v !== null) span.style.background = colour(v);
        if (i === ex.pos) span.classList.add("here");
        div.append(span);
      });
      return div;
    };
    const act = (v) => "rgba(var(--act), " + Math.min(1, v / top).toFixed(3) + ")";
    const wrap = el("div", {class: "pair"},
      line(ex.acts, act, "act", (v) => "activation " + num(v)));
    if (ex.effect) {
      const eff = (v) => (v >= 0 ? "rgba(var(--up), " : "rgba(var(--down), ") +
        Math.min(1, Math.abs(v) / effectScale).toFixed(3) + ")";
      wrap.append(line(ex.effect, eff, "ablated", (v) => "loss " + (v >= 0 ? "+" : "") + num(v, 4) + " nats"));
    }
    return wrap;
  }

  // --- one feature -------------------------------------------------------------------------

  function showFeature(f) {
    const page = $("#feature");
    page.replaceChildren();
    page.setAttribute("data-feature", f.id);
    page.append(el("h2", {}, "Feature " + f.id + " ", el("span", {class: "muted"}, f.label)));
    page.append(el("p", {}, "density " + pct(f.density) + " of " + INDEX.tokens + " tokens · max activation " +
      num(f.max)));
    const logd = INDEX.log_density;
    const figs = el("div", {class: "row"},
      el("div", {}, el("h3", {}, "Density among all features"),
        histogram(logd.counts, logd.edges, f.density > 0 ? Math.log10(f.density) : null, "log10 density")));
    if (f.hist) {
      figs.append(el("div", {}, el("h3", {}, "Activations where it fires"),
        histogram(f.hist.counts, f.hist.edges, null, "activation")));
    }
    page.append(figs);
    page.append(el("div", {class: "row"},
      el("div", {}, el("h3", {}, "Top logits (W_U · norm(W_dec))"), logitTable(f.pos_logits)),
      el("div", {}, el("h3", {}, "Bottom logits"), logitTable(f.neg_logits)),
      el("div", {}, el("h3", {}, "Nearest features (decoder cosine)"),
        el("table", {}, ...f.neighbours.map(([j, c]) => el("tr", {},
          el("td", {}, el("a", {href: hashFor({f: j, q: readHash().q})}, "#" + j)),
          el("td", {class: "num"}, num(c, 3)), el("td", {}, INDEX.features[j][3])))))));
    if (window.IMO_LIVE) window.IMO_LIVE.feature(f, page, readHash());   // live.js: the steer panel
    if (!f.top.length) {
      page.append(el("p", {class: "hint"}, "This feature never fired on the scanned text."));
      return;
    }
    const effects = f.top.flatMap((ex) => (ex.effect || []).filter((v) => v !== null).map(Math.abs));
    const scale = Math.max(1e-6, ...effects);
    page.append(el("h3", {id: "top"}, "Top activations"));
    page.append(el("p", {class: "hint"}, "Orange: activation. Second line: the change in each " +
      "token's loss when the feature is removed everywhere (red: it helped, blue: it hurt; max " +
      num(scale, 4) + " nats)."));
    for (const ex of f.top) page.append(example(ex, f.max, scale));
    for (const bin of f.bins) {
      page.append(el("h3", {class: "bin"}, "Quantile " + Math.round(100 * bin.q[0]) + "–" +
        Math.round(100 * bin.q[1]) + "% of activations (" + num(bin.lo) + " to " + num(bin.hi) + ")"));
      for (const ex of bin.examples) page.append(example(ex, f.max, scale));
    }
  }

  function loadChunk(n, then) {
    window.IMO_CHUNKS = window.IMO_CHUNKS || {};
    if (window.IMO_CHUNKS[n]) return then(window.IMO_CHUNKS[n]);
    const s = el("script", {src: "data/chunk-" + String(n).padStart(3, "0") + ".js"});
    s.onload = () => then(window.IMO_CHUNKS[n]);
    s.onerror = () => { $("#feature").textContent = "Could not load " + s.src + "."; };
    document.head.append(s);
  }

  // --- putting it together -----------------------------------------------------------------

  function route() {
    const state = readHash();
    const id = state.f === undefined || state.f === "" ? null : Number(state.f);
    const box = $("#search");
    if (document.activeElement !== box) box.value = state.q || "";
    showList(box.value, id);
    if (state.live !== undefined && window.IMO_LIVE) {   // the custom-text page (live.js)
      window.IMO_LIVE.page(state);
      document.body.setAttribute("data-ready", "live");
      return;
    }
    if (id === null || !(id >= 0 && id < INDEX.features.length)) {
      document.body.setAttribute("data-ready", "list");
      return;
    }
    loadChunk(Math.floor(id / INDEX.chunk), (chunk) => {
      showFeature(chunk[id % INDEX.chunk]);
      document.body.setAttribute("data-ready", "feature");
    });
  }

  function start() {
    if (!INDEX) {
      $("#feature").textContent = "data/index.js is missing or did not load.";
      return;
    }
    const m = INDEX.meta;
    $("#meta").textContent = [m.arch + " SAE " + (m.sae || "").slice(0, 12), m.latents + " latents",
      "hook " + m.hook, "model " + (m.lm || "").slice(0, 12), INDEX.tokens + " tokens of " + m.corpus,
      INDEX.dead + " dead"].concat(m.metrics || []).join(" · ");
    $("#search").addEventListener("input", (e) => {
      const state = readHash();
      history.replaceState(null, "", hashFor({f: state.f, q: e.target.value}));
      showList(e.target.value, state.f === undefined ? null : Number(state.f));
    });
    addEventListener("hashchange", route);
    route();
  }

  start();
})();
