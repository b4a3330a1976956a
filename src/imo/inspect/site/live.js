// The browser's live half: the custom-text page (#live) and the steer panel of a feature page.
// Both need `imo serve LM_RUN --sae SAE_RUN` (imo.inspect.routes); the rest of the site needs
// no server. Nothing is fetched until one of them is used. The server's address comes from
// #server=URL, else the last one used (localStorage), else http://127.0.0.1:8000.
// Requests are sent as text/plain, a "simple" request: a page from file:// gets no preflight.
// #live&text=... runs a text at once; #f=N&steer=PROMPT&value=V steers at once (the tests use it).
"use strict";

window.IMO_LIVE = (function () {
  const $ = (sel) => document.querySelector(sel);
  const DEFAULT = "http://127.0.0.1:8000";

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const kid of kids) node.append(kid instanceof Node ? kid : String(kid));
    return node;
  }

  function server(state) {
    let url = state.server || "";
    try { url = url || localStorage.getItem("imo-server") || ""; } catch (e) { /* file:// may refuse */ }
    return (url || DEFAULT).replace(/\/+$/, "");
  }

  function remember(url) {
    try { localStorage.setItem("imo-server", url); } catch (e) { /* not kept */ }
  }

  // GET or POST (a JSON body sent as text/plain) to the server; resolves to the answer's JSON or
  // rejects with a message that says what to do
  async function call(url, path, body) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), body ? 120000 : 4000);
    let res;
    try {
      res = await fetch(url + path, body === undefined ? {signal: ctl.signal} :
        {method: "POST", body: JSON.stringify(body), headers: {"Content-Type": "text/plain"}, signal: ctl.signal});
    } catch (e) {
      throw new Error("No server reachable at " + url + ". Start one with `imo serve " +
        (INDEX().meta.lm || "LM_RUN").slice(0, 12) + " --sae " + (INDEX().meta.sae || "SAE_RUN").slice(0, 12) +
        "` (or give its address below); the rest of this site works without it.");
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      const why = data && data.error ? data.error.message : "HTTP " + res.status;
      throw new Error(res.status === 404 && path === "/v1/imo/inspect" ? "The server at " + url +
        " has no SAE loaded: start it with --sae " + (INDEX().meta.sae || "").slice(0, 12) + "." : why);
    }
    return data;
  }

  const INDEX = () => window.IMO_INDEX;

  // the server must hold this site's SAE, or its feature ids mean other features
  async function connect(url) {
    const info = await call(url, "/v1/imo/inspect");
    if (INDEX().meta.sae && info.sae !== INDEX().meta.sae) {
      throw new Error("The server at " + url + " holds SAE " + info.sae.slice(0, 12) + ", not this site's " +
        INDEX().meta.sae.slice(0, 12) + ".");
    }
    remember(url);
    return info;
  }

  function status(box, text, kind) {
    box.replaceChildren(text);
    box.className = "live-status " + kind;
    document.body.setAttribute("data-live", kind);
  }

  function serverRow(url) {
    return el("p", {class: "hint"}, "Server ", el("input", {id: "live-server", value: url, size: 28,
      "aria-label": "server address"}));
  }

  // --- custom text -------------------------------------------------------------------------

  function page(state) {
    const art = $("#feature");
    art.replaceChildren();
    art.removeAttribute("data-feature");
    const url = server(state);
    const box = el("textarea", {id: "live-text", rows: 5, cols: 70, "aria-label": "text to run"});
    box.value = state.text || "def main():\n    return None\n";
    const go = el("button", {id: "live-run"}, "Run through the model and the SAE");
    const st = el("p", {id: "live-status", class: "live-status"});
    const out = el("div", {id: "live-out"});
    art.append(el("h2", {}, "Custom text"), el("p", {class: "hint"},
      "Runs your text through the model to the SAE's hook (" + INDEX().meta.hook + ") and shows each " +
      "token's strongest features. Needs the server."), serverRow(url), box, el("p", {}, go), st, out);
    go.addEventListener("click", () => runText($("#live-server").value.trim(), box.value, st, out));
    if (state.text) runText(url, state.text, st, out);
  }

  async function runText(url, text, st, out) {
    out.replaceChildren();
    status(st, "Running…", "busy");
    let ans;
    try {
      await connect(url);
      ans = await call(url, "/v1/imo/inspect/text", {text});
    } catch (e) {
      return status(st, e.message, "error");
    }
    const top = Math.max(1e-6, ...ans.features.map((fs) => (fs.length ? fs[0][1] : 0)));
    const detail = el("p", {id: "live-detail", class: "hint"}, "Point at a token to see its features.");
    const line = el("div", {class: "ex", id: "live-tokens"});
    ans.tokens.forEach((tok, i) => {
      const fs = ans.features[i];
      const span = el("span", {title: fs.map(([j, v]) => "#" + j + " " + v.toFixed(2)).join(", ")}, tok);
      if (fs.length) span.style.background = "rgba(var(--act), " + Math.min(1, fs[0][1] / top).toFixed(3) + ")";
      span.addEventListener("mouseenter", () => detail.replaceChildren("“" + tok + "”: ",
        ...fs.flatMap(([j, v]) => [el("a", {href: "#f=" + j}, "#" + j), " " + v.toFixed(2) + "  "])));
      line.append(span);
      if (tok.endsWith("↵")) line.append(el("br"));   // the text's own line breaks
    });
    const rows = ans.top.map(([j, v, n]) => el("tr", {"data-id": j}, el("td", {}, el("a", {href: "#f=" + j}, "#" + j)),
      el("td", {class: "num"}, v.toFixed(3)), el("td", {class: "num"}, n + " tok"),
      el("td", {}, INDEX().features[j] ? INDEX().features[j][3] : "")));
    out.append(line, detail, el("h3", {}, "Strongest features in this text"),
      el("table", {id: "live-top"}, ...rows));
    status(st, ans.tokens.length + " tokens, " + ans.top.length + " features fired.", "text");
  }

  // --- steering, on a feature page ------------------------------------------------------------

  function feature(f, art, state) {
    const url = server(state);
    const prompt = el("input", {id: "steer-prompt", size: 40, "aria-label": "prompt to continue",
      value: state.steer || (f.top.length ? f.top[0].tokens.slice(0, f.top[0].pos + 1).join("")
        .replace(/↵/g, "\n").replace(/→/g, "\t") : "def ")});
    const value = el("input", {id: "steer-value", size: 6, "aria-label": "clamp value",
      value: state.value || (2 * (f.max || 1)).toFixed(2)});
    const go = el("button", {id: "steer-run"}, "Steer");
    const st = el("p", {id: "steer-status", class: "live-status"});
    const out = el("div", {id: "steer-out"});
    art.append(el("h3", {}, "Steer (needs the server)"), el("p", {class: "hint"},
      "Greedy text with this feature clamped at a value at every position (x + (value − f(x)) W_dec), " +
      "beside the text without it."), serverRow(url),
      el("p", {}, "Prompt ", prompt, " value ", value, " ", go), st, out);
    go.addEventListener("click", () => steer($("#live-server").value.trim(), f.id, prompt.value, +value.value, st, out));
    if (state.steer) steer(url, f.id, state.steer, +(state.value || value.value), st, out);
  }

  async function steer(url, id, prompt, value, st, out) {
    out.replaceChildren();
    status(st, "Generating…", "busy");
    let ans;
    try {
      await connect(url);
      ans = await call(url, "/v1/imo/inspect/steer", {prompt, feature: id, value, max_tokens: 48});
    } catch (e) {
      return status(st, e.message, "error");
    }
    const show = (what, text, cls) => el("div", {class: "pair " + cls}, el("div", {class: "ex"},
      el("span", {class: "what"}, what), el("span", {class: "prompt"}, prompt), el("span", {}, text)));
    out.append(show("without", ans.baseline, "baseline"), show("clamped " + value, ans.steered, "steered"));
    status(st, "Feature #" + id + " clamped at " + value + ".", "steer");
  }

  return {page, feature};
})();
