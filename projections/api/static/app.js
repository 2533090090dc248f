// The agentlog web page: workflows, a timeline per workflow, metrics charts.
//
// Reads the query API's JSON routes only (the page is served at <api>/ui/).
// Every value from the API enters the DOM as text (textContent, createTextNode,
// setAttribute on non-URL attributes): this file never parses HTML.
// With AGENTLOG_API_TOKEN set the API answers 401; the page then asks for the
// token, keeps it in sessionStorage (this tab only) and sends it as a bearer token.
"use strict";

(() => {
  const API = new URL("..", location.href); // the API's root: the page lives at <root>/ui/
  const TOKEN_KEY = "agentlog.api-token";
  const PAGE_SIZE = 50;
  const STATUSES = ["running", "succeeded", "failed", "cancelled", "rejected"];
  const SVG_NS = "http://www.w3.org/2000/svg";

  // -- DOM helpers -------------------------------------------------------------------

  /** An element with attributes and children (strings become text nodes). */
  function h(tag, attrs, ...children) {
    return build(document.createElement(tag), attrs, children);
  }

  /** An SVG element with attributes and children. */
  function svg(tag, attrs, ...children) {
    return build(document.createElementNS(SVG_NS, tag), attrs, children);
  }

  function build(el, attrs, children) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** The element with data-role=name inside root. */
  function role(root, name) {
    return root.querySelector(`[data-role="${name}"]`);
  }

  /** A class name safe to build from data: only [a-z0-9_-]. */
  function cls(prefix, value) {
    return prefix + String(value || "unknown").toLowerCase().replace(/[^a-z0-9_-]/g, "");
  }

  function badge(status) {
    return h("span", { class: `badge ${cls("status-", status)}` }, status || "?");
  }

  function say(message, kind) {
    const el = document.getElementById("status");
    el.textContent = message || "";
    el.className = kind || "";
  }

  // -- formatting ----------------------------------------------------------------------

  const pad = (n, w = 2) => String(n).padStart(w, "0");

  /** A time in local time: 2025-01-02 03:04:05 (and .678 with millis). */
  function fmtTime(value, millis = false) {
    if (!value) return "—";
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return String(value);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` +
      (millis ? `.${pad(d.getMilliseconds(), 3)}` : "");
  }

  function fmtClock(ms) {
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function fmtDuration(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
    const s = Math.round(ms / 1000);
    if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  }

  function fmtNumber(n, digits = 0) {
    if (n === null || n === undefined) return "—";
    return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
  }

  const ms = (value) => (value ? new Date(value).getTime() : null);
  const between = (a, b) => (a && b ? ms(b) - ms(a) : null);

  // -- the API -------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(`${status}: ${detail}`);
      this.status = status;
      this.detail = detail;
    }
  }

  function detailOf(body) {
    if (body && typeof body === "object" && "detail" in body) {
      const d = body.detail;
      if (Array.isArray(d)) return d.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
      return String(d);
    }
    return typeof body === "string" ? body.slice(0, 300) : "unexpected answer";
  }

  function headers(extra) {
    const out = { Accept: "application/json", ...extra };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) out.Authorization = `Bearer ${token}`;
    return out;
  }

  function apiUrl(path, params) {
    const url = new URL(path.replace(/^\//, ""), API);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
    }
    return url;
  }

  /** The JSON body of an API call; throws ApiError (401: asks for the token). */
  async function api(path, { params, method = "GET", body, signal } = {}) {
    const init = { method, signal, cache: "no-store", headers: headers() };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(apiUrl(path, params), init);
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (response.status === 401) askForToken(detailOf(data));
    if (!response.ok) throw new ApiError(response.status, detailOf(data));
    return data;
  }

  const wid = (id) => `/workflows/${encodeURIComponent(id)}`;

  function report(error) {
    if (error.name === "AbortError") return;
    if (error instanceof ApiError && error.status === 401) return; // the token form says it
    say(error instanceof ApiError ? error.detail : `The API cannot be reached: ${error.message}`,
      "error");
  }

  // -- the token -----------------------------------------------------------------------

  const tokenForm = document.getElementById("token-form");
  const tokenForget = document.getElementById("token-forget");

  function askForToken(detail) {
    const asking = !tokenForm.hidden;
    tokenForm.hidden = false;
    tokenForget.hidden = !sessionStorage.getItem(TOKEN_KEY);
    say(`The API needs a token (${detail}). Enter the value of AGENTLOG_API_TOKEN.`, "error");
    if (!asking) document.getElementById("token-input").focus(); // not again on each refresh
  }

  tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token-input");
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    tokenForm.hidden = true;
    tokenForget.hidden = false;
    route();
  });

  tokenForget.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    tokenForget.hidden = true;
    route();
    say("Token forgotten.");
  });
  tokenForget.hidden = !sessionStorage.getItem(TOKEN_KEY);

  // -- views and their life ------------------------------------------------------------

  const cleanups = [];

  function onLeave(fn) {
    cleanups.push(fn);
  }

  /** Call fn every period ms while the view is shown (skipped while the tab is hidden). */
  function every(period, fn) {
    const timer = setInterval(() => {
      if (!document.hidden) fn();
    }, period);
    onLeave(() => clearInterval(timer));
  }

  function mount(templateId, title) {
    for (const fn of cleanups.splice(0)) fn();
    const main = document.getElementById("view");
    const content = document.getElementById(templateId).content.cloneNode(true);
    main.replaceChildren(content);
    main.dataset.view = templateId;
    delete main.dataset.ready;
    document.title = `${title} · agentlog`;
    for (const link of document.querySelectorAll("[data-nav]")) {
      const current = templateId.startsWith(link.dataset.nav.replace(/s$/, ""));
      if (current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    return main;
  }

  function route() {
    const hash = location.hash || "#/";
    say("");
    if (hash.startsWith("#/workflows/")) {
      let id;
      try {
        id = decodeURIComponent(hash.slice("#/workflows/".length));
      } catch {
        id = hash.slice("#/workflows/".length);
      }
      showWorkflow(id);
    } else if (hash === "#/metrics") {
      showMetrics();
    } else {
      showWorkflows(new URLSearchParams(hash.split("?")[1] || ""));
    }
  }

  // -- workflows -----------------------------------------------------------------------

  function showWorkflows(query) {
    const view = mount("workflows-view", "Workflows");
    const form = role(view, "filters");
    const rows = role(view, "rows");
    const more = role(view, "more");
    const empty = role(view, "empty");
    const status = STATUSES.includes(query.get("status")) ? query.get("status") : "";
    const definition = query.get("definition") || "";
    form.elements.status.value = status;
    form.elements.definition.value = definition;
    let cursor = null;
    let shown = 0;
    let busy = false;

    async function load(first) {
      if (busy) return;
      busy = true;
      try {
        // a refresh reloads as many rows as are shown, so "more" pages stay
        const limit = first ? Math.min(500, Math.max(PAGE_SIZE, shown)) : PAGE_SIZE;
        const page = await api("/workflows", {
          params: { status, definition, limit, cursor: first ? null : cursor },
        });
        if (first) {
          rows.replaceChildren();
          shown = 0;
        }
        rows.append(...page.items.map(workflowRow));
        shown += page.items.length;
        cursor = page.next_cursor;
        more.hidden = !cursor;
        empty.hidden = shown > 0;
        view.dataset.ready = "true";
      } catch (error) {
        report(error);
      } finally {
        busy = false;
      }
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const params = new URLSearchParams();
      if (form.elements.status.value) params.set("status", form.elements.status.value);
      if (form.elements.definition.value.trim()) {
        params.set("definition", form.elements.definition.value.trim());
      }
      location.hash = params.size ? `#/?${params}` : "#/";
    });
    more.addEventListener("click", () => load(false));
    every(5000, () => form.elements.auto.checked && load(true));
    load(true);
  }

  function workflowRow(w) {
    const error = w.error ? `${w.failed_step ? `${w.failed_step}: ` : ""}${w.error.error_kind}: ${w.error.message}` : "";
    const end = w.ended_at || (w.status === "running" ? new Date().toISOString() : null);
    return h("tr", { "data-workflow-id": w.workflow_id },
      h("td", {}, h("a", { href: `#${wid(w.workflow_id)}` }, w.workflow_id)),
      h("td", {}, badge(w.status)),
      h("td", {}, w.version ? `${w.definition} v${w.version}` : w.definition || "—"),
      h("td", {}, h("time", { datetime: w.created_at }, fmtTime(w.created_at))),
      h("td", { class: "num" }, fmtDuration(between(w.started_at || w.created_at, end))),
      h("td", { class: "error-text" }, error));
  }

  // -- one workflow --------------------------------------------------------------------

  function showWorkflow(id) {
    const view = mount("workflow-view", id);
    role(view, "id").textContent = id;
    const abort = new AbortController();
    onLeave(() => abort.abort());
    let state = null;
    let refreshing = false;
    let again = false;

    async function refresh() {
      if (refreshing) {
        again = true;
        return;
      }
      refreshing = true;
      try {
        const [current, timeline] = await Promise.allSettled([
          api(wid(id), { signal: abort.signal }),
          api(`${wid(id)}/timeline`, { signal: abort.signal }),
        ]);
        const problem = role(view, "problem");
        problem.hidden = current.status === "fulfilled";
        if (current.status === "fulfilled") {
          state = current.value;
          renderState(view, state);
        } else if (current.reason.name !== "AbortError") {
          problem.textContent = current.reason.detail || current.reason.message;
        }
        if (timeline.status === "fulfilled") {
          renderTimeline(role(view, "timeline"), timeline.value.steps, state);
        } else {
          report(timeline.reason);
        }
        view.dataset.ready = "true";
      } finally {
        refreshing = false;
        if (again && !abort.signal.aborted) {
          again = false;
          setTimeout(refresh, 250);
        }
      }
    }

    let pending = null;
    const soon = () => {
      clearTimeout(pending);
      pending = setTimeout(refresh, 300);
    };
    onLeave(() => clearTimeout(pending));

    const events = role(view, "events");
    tail(id, abort.signal, (message) => {
      events.append(eventRow(events.children.length + 1, message));
      soon();
    }, (live) => {
      role(view, "live").textContent = live;
    });

    role(view, "cancel").addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!window.confirm(`Cancel workflow ${id}?`)) return;
      const reason = event.target.elements.reason.value;
      try {
        await api(`${wid(id)}/cancel`, { method: "POST", body: { reason } });
        say("Cancel requested: the orchestrator decides.");
      } catch (error) {
        report(error);
      }
    });
    role(view, "signal").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = event.target;
      let payload;
      try {
        payload = JSON.parse(form.elements.payload.value || "null");
      } catch (error) {
        say(`The payload is not JSON: ${error.message}`, "error");
        return;
      }
      try {
        await api(`${wid(id)}/signals`, {
          method: "POST",
          body: { signal: form.elements.signal.value, payload },
        });
        say(`Signal ${form.elements.signal.value} sent.`);
      } catch (error) {
        report(error);
      }
    });
    every(5000, () => state && state.status === "running" && refresh()); // open bars grow
    refresh();
  }

  function renderState(view, state) {
    const status = badge(state.status);
    status.dataset.role = "status";
    role(view, "status").replaceWith(status);
    const facts = [
      ["Definition", state.version ? `${state.definition} v${state.version}` : state.definition || "—"],
      ["Priority", state.priority],
      ["Started", fmtTime(state.started_at)],
      ["Ended", fmtTime(state.ended_at)],
      ["Duration", fmtDuration(between(state.started_at, state.ended_at || (state.status === "running" ? new Date().toISOString() : null)))],
      ["Journal events", state.journal_length],
    ];
    if (Object.keys(state.labels || {}).length) {
      facts.push(["Labels", Object.entries(state.labels).map(([k, v]) => `${k}=${v}`).join(", ")]);
    }
    if (state.error) {
      facts.push(["Error", `${state.failed_step ? `${state.failed_step}: ` : ""}${state.error.error_kind}: ${state.error.message}`]);
    }
    role(view, "facts").replaceChildren(...facts.flatMap(([name, value]) => [
      h("dt", {}, name), h("dd", {}, String(value)),
    ]), h("dt", {}, "Input"), h("dd", {}, json(state.input)),
    h("dt", {}, "Output"), h("dd", {}, json(state.output)));
    role(view, "actions").hidden = state.status !== "running";
    role(view, "steps").replaceChildren(...Object.entries(state.steps || {}).map(([name, step]) => {
      const tasks = step.tasks.map((t) => `#${t.item} ${t.status} (attempt ${t.attempt}, ${t.agent_kind})`);
      return h("tr", {},
        h("th", { scope: "row" }, name),
        h("td", {}, badge(step.status)),
        h("td", { class: "num" }, step.run),
        h("td", {}, tasks.join("; ") || "—"),
        h("td", { class: "error-text" }, step.error ? `${step.error.error_kind}: ${step.error.message}` : ""));
    }));
  }

  /** A JSON value, folded away in a <details>. */
  function json(value) {
    if (value === null || value === undefined) return "—";
    const text = JSON.stringify(value, null, 2);
    if (text.length <= 60 && !text.includes("\n")) return h("code", {}, text);
    return h("details", {}, h("summary", {}, `${text.length} characters of JSON`), h("pre", {}, text));
  }

  function eventRow(n, message) {
    let payload = null;
    try {
      payload = JSON.parse(message.data);
    } catch {
      payload = message.data;
    }
    const envelope = (payload && payload.envelope) || {};
    const summary = payload && (payload.step || payload.signal || payload.task_id || payload.definition || "");
    const details = h("details", {}, h("summary", {}, summary ? String(summary) : "details"));
    details.addEventListener("toggle", () => {
      if (details.open && details.children.length === 1) {
        details.append(h("pre", {}, JSON.stringify(payload, null, 2)));
      }
    }, { once: true });
    return h("tr", {},
      h("td", { class: "num" }, n),
      h("td", {}, h("time", { datetime: envelope.occurred_at }, fmtTime(envelope.occurred_at, true))),
      h("td", {}, message.event || payload.type || "?"),
      h("td", {}, envelope.source || ""),
      h("td", {}, details));
  }

  /** Follow the server-sent events of a workflow (fetch, so the bearer token can be sent). */
  async function tail(id, signal, onEvent, onState) {
    let last = null;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const extra = { Accept: "text/event-stream" };
        if (last) extra["Last-Event-ID"] = last;
        const response = await fetch(apiUrl(`${wid(id)}/events`), {
          headers: headers(extra), signal, cache: "no-store",
        });
        if (response.status === 401) {
          askForToken("401");
          onState("(needs the token)");
          return;
        }
        if (!response.ok) {
          onState(response.status === 404 ? "(no events yet)" : `(error ${response.status})`);
          if (response.status === 404 && failures > 20) return;
          throw new ApiError(response.status, "tail");
        }
        onState("● live");
        failures = 0;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const message = parseMessage(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (!message) continue;
            if (message.event === "end") {
              onState("(ended)");
              return;
            }
            if (message.id) last = message.id;
            onEvent(message);
          }
        }
      } catch (error) {
        if (signal.aborted) return;
      }
      failures += 1;
      onState("(reconnecting…)");
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * 2 ** failures, 15_000)));
    }
  }

  function parseMessage(block) {
    const message = { id: null, event: "message", data: [] };
    let any = false;
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") message.data.push(value);
      else if (field === "id") message.id = value;
      else if (field === "event") message.event = value;
      else continue;
      any = true;
    }
    message.data = message.data.join("\n");
    return any ? message : null;
  }

  // -- the timeline chart ----------------------------------------------------------------

  function renderTimeline(container, steps, state) {
    if (!steps.length) {
      container.replaceChildren(h("p", { class: "empty" }, "No steps yet."));
      return;
    }
    const now = Date.now();
    const open = (s) => ["running", "waiting", "pending"].includes(s.status);
    const bars = steps.map((s) => {
      const ended = ms(s.completed_at) ?? ms(s.failed_at) ?? ms(s.timed_out_at) ?? ms(s.cancelled_at);
      const start = ms(s.requested_at) ?? ms(s.scheduled_at) ?? ended ?? now; // joins: only an end
      const end = ended ?? (open(s) ? now : start);
      return { s, start, end: Math.max(start, end), scheduled: ms(s.scheduled_at) };
    }).sort((a, b) => a.start - b.start); // stable: the API's order among equal starts
    const t0 = Math.min(...bars.map((b) => Math.min(b.start, b.scheduled ?? b.start)), ms(state && state.started_at) ?? Infinity);
    const t1 = Math.max(...bars.map((b) => b.end), t0 + 1);
    const width = 960;
    const left = 230;
    const right = 20;
    const top = 28;
    const row = 24;
    const height = top + bars.length * row + 8;
    const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
    const title = `Timeline of ${bars.length} step attempts over ${fmtDuration(t1 - t0)}`;
    const chart = svg("svg", {
      viewBox: `0 0 ${width} ${height}`, class: "timeline", role: "img", "aria-label": title,
    }, svg("title", {}, title));
    for (const tick of ticks(0, t1 - t0, 6)) {
      const tx = x(t0 + tick);
      chart.append(
        svg("line", { x1: tx, x2: tx, y1: top - 6, y2: height, class: "grid" }),
        svg("text", { x: tx, y: top - 10, class: "axis", "text-anchor": "middle" }, `+${fmtDuration(tick)}`));
    }
    bars.forEach((b, i) => {
      const { s } = b;
      const y = top + i * row;
      let label = s.step;
      if (s.item !== null && s.item !== undefined) label += ` [${s.item}]`;
      if (s.attempt > 1) label += ` · attempt ${s.attempt}`;
      if (s.kind === "skip" || s.kind === "join") label += ` (${s.kind})`;
      const tip = [
        `${label}: ${s.status}`,
        `${fmtTime(b.start)}, ${fmtDuration(b.end - b.start)}`,
        s.agent_kind ? `agent kind ${s.agent_kind}${s.agent_id ? ` (${s.agent_id})` : ""}` : "",
        s.error_kind ? `${s.error_kind}: ${s.error_message || ""}` : "",
        s.cancel_reason ? `cancelled: ${s.cancel_reason}` : "",
      ].filter(Boolean).join("\n");
      const group = svg("g", { class: `bar ${cls("status-", s.status)}`, "data-step": s.step },
        svg("title", {}, tip),
        svg("text", { x: left - 8, y: y + row / 2 + 4, "text-anchor": "end", class: "label" }, clip(label, 32)));
      if (b.scheduled !== null && b.scheduled < b.start) {
        group.append(svg("line", { x1: x(b.scheduled), x2: x(b.start), y1: y + row / 2, y2: y + row / 2, class: "wait" }));
      }
      const bx = x(b.start);
      group.append(svg("rect", {
        x: bx, y: y + 4, width: Math.max(3, x(b.end) - bx), height: row - 8, rx: 2, class: "span",
      }));
      if (open(s) && s.progress !== null && s.progress !== undefined) {
        group.append(svg("rect", {
          x: bx, y: y + row - 7, width: Math.max(0, (x(b.end) - bx) * s.progress), height: 3, class: "progress",
        }));
      }
      chart.append(group);
    });
    container.replaceChildren(chart, legend([
      ["completed", "completed"], ["running", "running / waiting"], ["failed", "failed"],
      ["timed_out", "timed out"], ["cancelled", "cancelled"], ["skipped", "skipped / joined"],
    ]));
  }

  function clip(text, n) {
    return text.length > n ? `${text.slice(0, n - 1)}…` : text;
  }

  function legend(items) {
    return h("ul", { class: "legend" }, items.map(([key, name]) =>
      h("li", {}, h("span", { class: `swatch ${cls("status-", key)}`, "aria-hidden": "true" }), name)));
  }

  /** About n round tick values from lo to hi (whole numbers only if integer). */
  function ticks(lo, hi, n, integer = false) {
    const step = integer ? Math.max(1, niceStep((hi - lo) / n)) : niceStep((hi - lo) / n);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return out;
  }

  function niceStep(raw) {
    if (!(raw > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(raw));
    const f = raw / power;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
  }

  // -- metrics -------------------------------------------------------------------------

  function showMetrics() {
    const view = mount("metrics-view", "Metrics");
    const form = role(view, "window");
    const abort = new AbortController();
    onLeave(() => abort.abort());
    let busy = false;

    async function load() {
      if (busy) return;
      busy = true;
      const minutes = Number(form.elements.minutes.value);
      const { signal } = abort;
      try {
        const [stats, series, locks, agents] = await Promise.all([
          api("/stats", { params: { minutes }, signal }),
          perMinute(minutes, signal),
          api("/locks", { params: { limit: 100 }, signal }),
          api("/agents", { params: { limit: 100 }, signal }),
        ]);
        renderSummary(role(view, "summary"), stats);
        renderKinds(role(view, "kinds"), stats.agent_kinds);
        role(view, "latency").replaceChildren(latencyChart(stats.agent_kinds));
        renderLocks(role(view, "locks"), locks.items);
        renderAgents(role(view, "agents"), agents.items);
        renderLag(role(view, "lag"), stats.projector);
        renderThroughput(role(view, "throughput"), series);
        view.dataset.ready = "true";
      } catch (error) {
        report(error);
      } finally {
        busy = false;
      }
    }

    form.addEventListener("change", load);
    form.addEventListener("submit", (event) => event.preventDefault());
    every(30_000, () => form.elements.auto.checked && load());
    load();
  }

  /**
   * Completed and failed steps per kind and minute, oldest first: one request to
   * /stats/minutes, whose series hold every minute of the window (zeros included).
   */
  async function perMinute(minutes, signal) {
    const body = await api("/stats/minutes", { params: { minutes }, signal });
    return body.agent_kinds.map(({ agent_kind: kind, minutes: series }) => ({
      kind,
      labels: series.map((m) => fmtClock(Date.parse(m.minute))),
      completed: series.map((m) => m.completed),
      failed: series.map((m) => m.failed),
    }));
  }

  function renderSummary(dl, stats) {
    const workflows = STATUSES.map((s) => `${stats.workflows[s] || 0} ${s}`).join(", ");
    const items = [
      ["Workflows", workflows],
      ["Archived events", fmtNumber(stats.events)],
      ["Dead letters", fmtNumber(stats.dead_letters)],
      ["Agents alive", `${stats.agents_alive} of ${stats.agents_total}`],
      ["Locks held", `${stats.locks_held} (${stats.lock_waiters} waiting)`],
    ];
    dl.replaceChildren(...items.map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, value))));
  }

  function renderKinds(tbody, kinds) {
    tbody.replaceChildren(...kinds.map((k) => h("tr", {},
      h("th", { scope: "row" }, k.agent_kind),
      ...[k.completed, k.failed, k.retried, k.timed_out].map((n) => h("td", { class: "num" }, fmtNumber(n))),
      ...[k.latency_p50_ms, k.latency_p95_ms, k.latency_p99_ms].map((v) => h("td", { class: "num" }, fmtDuration(v))),
      h("td", { class: "num" }, k.cache_hit_rate === null ? "—" : `${(k.cache_hit_rate * 100).toFixed(1)} %`))));
    if (!kinds.length) tbody.append(emptyRow(9, "No steps in this window."));
  }

  function renderLocks(tbody, locks) {
    tbody.replaceChildren(...locks.map((l) => h("tr", {},
      h("th", { scope: "row" }, l.resource),
      h("td", {}, badge(l.status)),
      h("td", {}, l.holder || "—"),
      h("td", { class: "num" }, l.fencing_token ?? "—"),
      h("td", {}, l.queue.length ? l.queue.map((w) => w.requester).join(", ") : "—"),
      h("td", { class: "num" }, fmtNumber(l.grants)),
      h("td", { class: "num" }, fmtNumber(l.denials)),
      h("td", { class: "num" }, fmtNumber(l.expiries)),
      h("td", {}, fmtTime(l.last_event_at)))));
    if (!locks.length) tbody.append(emptyRow(9, "No locks yet."));
  }

  function renderAgents(tbody, agents) {
    tbody.replaceChildren(...agents.map((a) => h("tr", {},
      h("th", { scope: "row" }, a.agent_id),
      h("td", {}, a.agent_kind),
      h("td", {}, badge(a.alive ? "alive" : "gone")),
      h("td", {}, `${a.host || "?"} / ${a.pid ?? "?"}`),
      h("td", { class: "num" }, a.in_flight === null ? "—" : `${a.in_flight} of ${a.capacity ?? "?"}`),
      h("td", { class: "num" }, fmtNumber(a.heartbeats)),
      h("td", {}, fmtTime(a.last_seen_at)))));
    if (!agents.length) tbody.append(emptyRow(7, "No agents registered."));
  }

  function renderLag(tbody, partitions) {
    tbody.replaceChildren(...partitions.map((p) => h("tr", {},
      h("th", { scope: "row" }, p.topic),
      h("td", { class: "num" }, p.partition),
      h("td", { class: "num" }, fmtNumber(p.next_offset)),
      h("td", { class: "num" }, fmtNumber(p.end_offset)),
      h("td", { class: "num" }, fmtNumber(p.lag)),
      h("td", {}, fmtTime(p.updated_at)))));
    if (!partitions.length) tbody.append(emptyRow(6, "The projector has not run yet."));
  }

  function emptyRow(span, text) {
    return h("tr", {}, h("td", { colspan: span, class: "empty" }, text));
  }

  function renderThroughput(container, series) {
    if (!series.length) {
      container.replaceChildren(h("p", { class: "empty" }, "No steps in this window."));
      return;
    }
    container.replaceChildren(...series.map((s) => h("figure", {},
      h("figcaption", {}, s.kind),
      barChart({
        title: `${s.kind}: completed and failed steps per minute`,
        labels: s.labels,
        series: [
          { name: "completed", key: "completed", values: s.completed },
          { name: "failed", key: "failed", values: s.failed },
        ],
        format: (v) => fmtNumber(v),
        integer: true,
        width: 420,
        height: 150,
      }))));
  }

  function latencyChart(kinds) {
    if (!kinds.length) return h("p", { class: "empty" }, "No step latencies in this window.");
    return barChart({
      title: "Step latency p50, p95 and p99 by agent kind",
      labels: kinds.map((k) => k.agent_kind),
      series: [
        { name: "p50", key: "p50", values: kinds.map((k) => k.latency_p50_ms || 0) },
        { name: "p95", key: "p95", values: kinds.map((k) => k.latency_p95_ms || 0) },
        { name: "p99", key: "p99", values: kinds.map((k) => k.latency_p99_ms || 0) },
      ],
      format: fmtDuration,
      width: 960,
      height: 300,
      slanted: kinds.length > 8,
    });
  }

  /** A grouped bar chart as an SVG element, with a y axis, labels and a legend. */
  function barChart({ title, labels, series, format, width, height, integer = false, slanted = false }) {
    const left = 64;
    const right = 12;
    const top = 28;
    const bottom = slanted ? 90 : 26; // slanted: every label, turned to fit
    const max = Math.max(1e-9, ...series.flatMap((s) => s.values));
    const yTicks = ticks(0, max, 4, integer);
    if (yTicks[yTicks.length - 1] < max) { // one more tick above the tallest bar
      yTicks.push(yTicks[yTicks.length - 1] + (yTicks.length > 1 ? yTicks[1] - yTicks[0] : max));
    }
    const yMax = yTicks[yTicks.length - 1];
    const plotW = width - left - right;
    const plotH = height - top - bottom;
    const y = (v) => top + plotH - (v / yMax) * plotH;
    const band = plotW / labels.length;
    const barW = Math.max(1, (band * 0.8) / series.length);
    const chart = svg("svg", {
      viewBox: `0 0 ${width} ${height}`, class: "barchart", role: "img", "aria-label": title,
    }, svg("title", {}, title));
    for (const v of yTicks) {
      chart.append(
        svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }),
        svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, format(v)));
    }
    const labelEvery = slanted ? 1 : Math.ceil(labels.length / Math.floor(plotW / 64));
    labels.forEach((label, i) => {
      const bx = left + i * band + band * 0.1;
      series.forEach((s, j) => {
        const v = s.values[i];
        chart.append(svg("rect", {
          x: bx + j * barW, y: y(v), width: Math.max(0.5, barW - 1), height: Math.max(0, top + plotH - y(v)),
          class: `series ${cls("series-", s.key)}`,
        }, svg("title", {}, `${label}: ${s.name} ${format(v)}`)));
      });
      if (i % labelEvery === 0 || i === labels.length - 1) {
        const lx = left + i * band + band / 2;
        const ly = slanted ? top + plotH + 14 : height - 8;
        chart.append(svg("text", {
          x: lx, y: ly, "text-anchor": slanted ? "end" : "middle", class: "axis",
          transform: slanted ? `rotate(-35 ${lx} ${ly})` : null,
        }, clip(String(label), slanted ? 20 : 14)));
      }
    });
    chart.append(svg("line", { x1: left, x2: width - right, y1: top + plotH, y2: top + plotH, class: "baseline" }));
    let lx = left;
    for (const s of series) {
      chart.append(
        svg("rect", { x: lx, y: 8, width: 10, height: 10, class: `series ${cls("series-", s.key)}` }),
        svg("text", { x: lx + 14, y: 17, class: "axis" }, s.name));
      lx += 24 + s.name.length * 7;
    }
    return chart;
  }

  // -- start -----------------------------------------------------------------------------

  window.addEventListener("hashchange", route);
  route();
})();
