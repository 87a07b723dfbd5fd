// The gatehouse operator console. Every value from the server is written with textContent or as an
// attribute value, never parsed as HTML. The server token lives in this variable only: it is sent as
// the Authorization header of the API calls, never put in a URL or in storage.
"use strict";

(() => {
  let serverToken = "";
  let cursor = null;
  let liveTimer = null;
  let suggestion = null;
  const MAX_ROWS = 500;

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
  }

  async function api(path, body) {
    const headers = {};
    if (serverToken) headers.Authorization = "Bearer " + serverToken;
    const init = { headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      init.method = "POST";
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const why = data && typeof data.message === "string" ? data.message : "HTTP " + response.status;
      throw new Error(why);
    }
    return data;
  }

  function query(params) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== "" && value !== null && value !== undefined) search.set(name, value);
    }
    const text = search.toString();
    return text ? "?" + text : "";
  }

  function time(ms) {
    return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
  }

  // ---- tabs ----
  function showTab(name) {
    for (const tab of document.querySelectorAll(".tab")) {
      tab.classList.toggle("active", tab.dataset.tab === name);
    }
    for (const page of document.querySelectorAll(".page")) {
      page.hidden = page.id !== "page-" + name;
    }
    clearError();
    if (name === "decisions") loadDecisions().catch((e) => showError(e.message));
    if (name === "policy") loadPolicy().catch((e) => showError(e.message));
    if (name !== "decisions") stopLive();
  }

  // ---- evaluate ----
  function list(text) {
    return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  }

  function object(id, label) {
    const text = $(id).value.trim();
    if (text === "") return {};
    let value;
    try {
      value = JSON.parse(text);
    } catch (_) {
      throw new Error(label + " is not valid JSON");
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new Error(label + " must be a JSON object");
    }
    return value;
  }

  function evaluationRequest() {
    const who = document.querySelector("input[name=who]:checked").value;
    const request = {
      action: $("ev-action").value.trim(),
      resource: {
        kind: $("ev-kind").value.trim(),
        id: $("ev-id").value.trim(),
        attributes: object("ev-attributes", "Resource attributes"),
      },
      context: object("ev-context", "Context"),
    };
    if (who === "principal") {
      request.principal = {
        user_id: $("ev-user").value.trim(),
        roles: list($("ev-roles").value),
        groups: list($("ev-groups").value),
        channel_roles: object("ev-channel-roles", "Channel roles"),
        claims: object("ev-claims", "Claims"),
      };
    } else if (who === "token") {
      request.token = $("ev-token").value.trim();
    } else {
      request.anonymous = true;
    }
    return request;
  }

  async function runEvaluation() {
    clearError();
    const target = $("ev-result");
    clear(target);
    try {
      const answer = await api("/console/api/evaluate", evaluationRequest());
      renderAnswer(target, answer, "ev");
    } catch (e) {
      showError(e.message);
    }
  }

  function badge(result) {
    return el("span", { class: "badge " + result, text: result });
  }

  function renderPolicyResult(result) {
    const state = result.granted ? "granted" : "denied";
    const item = el("li", { "data-policy": result.name, "data-granted": String(result.granted) },
      badge(state), el("span", { class: "name", text: result.name }),
      result.negative ? el("span", { class: "badge", text: "negative logic" }) : null,
      result.detail ? el("span", { class: "detail", text: " " + result.detail }) : null);
    for (const detail of result.details || []) item.append(el("div", { class: "detail", text: detail }));
    if (result.children && result.children.length) {
      const children = el("ul");
      for (const child of result.children) children.append(renderPolicyResult(child));
      item.append(children);
    }
    return item;
  }

  function renderAnswer(target, answer, prefix) {
    const verdict = answer.allowed ? "ALLOW" : "DENY";
    target.append(
      el("div", { class: "verdict" },
        el("span", { id: prefix + "-verdict", class: answer.allowed ? "allow" : "deny", text: verdict }),
        " by rule ", el("code", { id: prefix + "-rule", text: answer.rule })),
      el("p", { id: prefix + "-reason", text: answer.reason }),
      el("p", { class: "muted", text: "policy revision " + answer.policy_revision +
        (answer.dry_run ? " · dry run (permissive): the policy denies" : "") +
        (answer.recorded === false ? " · not recorded as a decision" : "") }));
    const explanation = answer.explanation;
    if (!explanation) {
      target.append(el("p", { class: "muted", text: "No explanation: the set's mode for checks is disabled." }));
      return;
    }
    target.append(el("h3", { text: "Explanation (strategy: " + explanation.strategy + ")" }));
    const trace = el("ol", { class: "trace", id: prefix + "-trace" });
    for (const entry of explanation.entries) {
      const item = el("li", { "data-name": entry.name, "data-result": entry.result },
        badge(entry.result), el("span", { class: "name", text: entry.name }),
        el("span", { class: "detail", text: " " + entry.origin + " · priority " + entry.priority +
          " · actions " + (entry.actions.length ? entry.actions.join(", ") : "*") }),
        entry.detail ? el("div", { class: "detail", text: entry.detail }) : null);
      for (const detail of entry.details || []) item.append(el("div", { class: "detail", text: detail }));
      if (entry.policies && entry.policies.length) {
        const policies = el("ul");
        for (const policy of entry.policies) policies.append(renderPolicyResult(policy));
        item.append(policies);
      }
      trace.append(item);
    }
    target.append(trace);
  }

  // ---- decisions ----
  function filters() {
    return {
      user: $("f-user").value.trim(),
      decision: $("f-decision").value,
      rule: $("f-rule").value.trim(),
      kind: $("f-kind").value.trim(),
      door: $("f-door").value,
    };
  }

  function decisionRow(entry) {
    const canEvaluate = entry.principal_kind === "user" || entry.principal_kind === "scoped" ||
      entry.principal_kind === "anonymous";
    const button = el("button", { type: "button", class: "small", text: "re-evaluate",
      title: canEvaluate ? "explain against the current policy set" : "only user and anonymous decisions can be re-evaluated" });
    button.disabled = !canEvaluate;
    button.addEventListener("click", () => reevaluate(entry));
    return el("tr", { "data-id": entry.id, "data-decision": entry.decision, "data-user": entry.principal_id,
      "data-rule": entry.rule, "data-kind": entry.resource_kind, "data-door": entry.door },
      el("td", { text: time(entry.time_ms) }),
      el("td", { text: entry.door }),
      el("td", { text: entry.principal_id || "(" + entry.principal_kind + ")" }),
      el("td", { text: (entry.roles || []).join(", ") }),
      el("td", { text: entry.action }),
      el("td", { text: entry.resource_kind + ":" + entry.resource_id }),
      el("td", { class: entry.decision, text: entry.decision + (entry.dry_run ? " (dry run)" : "") }),
      el("td", { text: entry.rule }),
      el("td", {}, button));
  }

  async function loadDecisions() {
    const page = await api("/console/api/decisions" + query({ ...filters(), limit: 100 }));
    const rows = $("d-rows");
    clear(rows);
    for (const entry of page.entries) rows.append(decisionRow(entry));
    cursor = page.cursor;
    summarize(page);
    await loadChart();
  }

  function summarize(page) {
    const oldest = page.oldest_ms ? " since " + time(page.oldest_ms) : "";
    $("d-summary").textContent = "The ring keeps " + page.kept + " decisions" + oldest +
      (page.truncated ? "; showing the newest that match" : "") +
      (page.gap ? "; some decisions left the ring between polls" : "") + ".";
  }

  async function poll() {
    try {
      const page = await api("/console/api/decisions" + query({ ...filters(), after: cursor || "", limit: 200 }));
      const rows = $("d-rows");
      const fresh = page.entries.slice().reverse();
      for (const entry of fresh) rows.insertBefore(decisionRow(entry), rows.firstChild);
      while (rows.childElementCount > MAX_ROWS) rows.removeChild(rows.lastChild);
      if (page.cursor) cursor = page.cursor;
      summarize(page);
      await loadChart();
    } catch (e) {
      stopLive();
      showError(e.message);
    }
  }

  function stopLive() {
    if (liveTimer !== null) clearInterval(liveTimer);
    liveTimer = null;
    $("f-live").checked = false;
  }

  function toggleLive() {
    if ($("f-live").checked) {
      if (liveTimer === null) liveTimer = setInterval(poll, 2000);
    } else {
      stopLive();
    }
  }

  async function reevaluate(entry) {
    clearError();
    const target = $("d-reevaluated");
    clear(target);
    const request = { action: entry.action, resource: { kind: entry.resource_kind, id: entry.resource_id } };
    if (entry.principal_kind === "anonymous") request.anonymous = true;
    else request.principal = { user_id: entry.principal_id, roles: entry.roles || [] };
    try {
      const answer = await api("/console/api/evaluate", request);
      target.append(el("p", { class: "muted", text: "Re-evaluated against the current policy set " +
        "with what the decision log keeps (user id, roles, action, resource kind and id; attributes, " +
        "context, groups, claims and channel roles are not logged). Logged: " + entry.decision +
        " by " + entry.rule + " at revision " + entry.revision + "." }));
      renderAnswer(target, answer, "re");
    } catch (e) {
      showError(e.message);
    }
  }

  // ---- chart ----
  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function loadChart() {
    const rate = await api("/console/api/rate?minutes=5");
    const width = 720, height = 160, left = 44, right = 64, top = 10, bottom = 22;
    const n = rate.allow.length;
    const seconds = rate.bucket_ms / 1000;
    const perSecond = rate.allow.map((a, i) => (a + rate.deny[i]) / seconds);
    const ratio = rate.allow.map((a, i) => (a + rate.deny[i] ? rate.deny[i] / (a + rate.deny[i]) : null));
    const peak = Math.max(1, ...perSecond);
    const x = (i) => left + (i + 0.5) * (width - left - right) / n;
    const y = (v) => top + (1 - v / peak) * (height - top - bottom);
    const yr = (v) => top + (1 - v) * (height - top - bottom);
    const chart = svg("svg", { width, height, viewBox: "0 0 " + width + " " + height, role: "img",
      "aria-label": "decisions per second and deny ratio, last 5 minutes" });
    chart.append(svg("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, stroke: "#b8c2cf" }));
    chart.append(svg("text", { x: 4, y: top + 10, "font-size": 10, fill: "#1d3557" }, peak.toFixed(1) + "/s"));
    chart.append(svg("text", { x: width - right + 4, y: top + 10, "font-size": 10, fill: "#a4161a" }, "100% deny"));
    chart.append(svg("text", { x: left, y: height - 6, "font-size": 10, fill: "#5b6675" },
      "last 5 min · decisions/s (blue) · deny ratio (red) · per " + seconds + " s"));
    const rates = perSecond.map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
    chart.append(svg("polyline", { points: rates, fill: "none", stroke: "#1d3557", "stroke-width": 1.5 }));
    const denies = ratio.map((v, i) => (v === null ? null : x(i).toFixed(1) + "," + yr(v).toFixed(1)))
      .filter((p) => p !== null).join(" ");
    if (denies) chart.append(svg("polyline", { points: denies, fill: "none", stroke: "#a4161a", "stroke-width": 1, "stroke-dasharray": "3 2" }));
    ratio.forEach((v, i) => {
      if (v !== null) chart.append(svg("circle", { cx: x(i).toFixed(1), cy: yr(v).toFixed(1), r: 2, fill: "#a4161a" }));
    });
    const target = $("chart");
    clear(target);
    target.append(chart);
  }

  // ---- principals ----
  function subject() {
    const name = $("p-name").value.trim();
    return $("p-which").value === "role" ? { role: name } : { user: name };
  }

  async function loadPrincipal() {
    clearError();
    $("p-download").disabled = true;
    suggestion = null;
    try {
      const who = subject();
      const [exercised, suggested] = await Promise.all([
        api("/console/api/exercised" + query(who)),
        api("/console/api/suggest" + query(who)),
      ]);
      const rows = $("p-rows");
      clear(rows);
      for (const p of exercised.permissions) {
        rows.append(el("tr", {},
          el("td", { text: p.action }), el("td", { text: p.resource_kind }),
          el("td", { text: p.resource_id_pattern + (p.pattern ? " (pattern)" : "") }),
          el("td", { class: p.allowed ? "allow" : "deny", text: p.allowed ? "allow" : "deny" }),
          el("td", { text: p.count }), el("td", { text: p.first_seen || "" }),
          el("td", { text: p.last_seen || "" }), el("td", { text: p.rule })));
      }
      $("p-summary").textContent = exercised.permissions.length + " distinct permissions from the " +
        exercised.entries_kept + " decisions the ring keeps" +
        (exercised.oldest_entry ? " (since " + exercised.oldest_entry + ")" : "") + ".";
      const notes = $("p-notes");
      clear(notes);
      for (const note of suggested.notes) notes.append(el("li", { text: note }));
      $("p-policy").textContent = suggested.policy;
      suggestion = suggested;
      $("p-download").disabled = false;
    } catch (e) {
      showError(e.message);
    }
  }

  function download() {
    if (!suggestion) return;
    const blob = new Blob([suggestion.policy], { type: "application/yaml" });
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: suggestion.file });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // ---- policy ----
  function table(headers, rows) {
    const body = el("tbody");
    for (const row of rows) body.append(el("tr", {}, ...row.map((cell) => el("td", { text: cell }))));
    return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))), body);
  }

  async function loadPolicy() {
    const p = await api("/console/api/policy");
    $("revision").textContent = "revision " + p.revision;
    const target = $("policy");
    clear(target);
    target.append(
      el("p", { id: "policy-revision", text: "Serving revision " + p.revision + ", loaded " + (p.loaded_at || "?") +
        (p.policy_dir ? " from " + p.policy_dir : " (built-in preset)") + "; strategy " + p.strategy +
        "; checks " + p.modes.checks + ", routes " + p.modes.routes + "." }),
      el("h3", { text: "Files" }),
      table(["path", "sha256"], p.files.map((f) => [f.path, f.sha256])),
      el("h3", { text: "Reloads: " + p.reloads_ok + " ok, " + p.reloads_failed + " failed" }),
      p.history.length
        ? table(["at", "result", "serving revision", "errors"], p.history.map((r) =>
          [r.at, r.ok ? "ok" : "failed", r.revision, r.errors.map(place).join("\n")]))
        : el("p", { class: "muted", text: "No reload since start." }));
    if (p.last_error) {
      const box = el("div", { class: "error", id: "policy-last-error" },
        el("strong", { text: "Last reload failed at " + p.last_error.at + "; the last good set keeps serving." }));
      for (const e of p.last_error.errors) box.append(el("div", { text: place(e) }));
      if (!p.last_error.errors.length) box.append(el("pre", { text: p.last_error.text }));
      target.append(box);
    }
    target.append(el("h3", { text: "Rules per resource kind" }));
    for (const [kind, rules] of Object.entries(p.kinds)) {
      target.append(el("h4", { text: kind === "*" ? "* (every kind)" : kind }),
        table(["name", "origin", "priority", "effect", "actions", "id", "description"],
          rules.map((r) => [r.name, r.origin, r.priority, r.effect, r.actions.join(", "), r.id || "", r.description])));
    }
    target.append(el("h3", { text: "Shadow set" }));
    if (!p.shadow) {
      target.append(el("p", { class: "muted", text: "No shadow set is configured." }));
    } else {
      target.append(el("p", { text: "Shadow revision " + p.shadow.revision + ": " + p.shadow.differences_in_ring +
        " of the decisions in the ring were decided otherwise." }),
      table(["time", "user", "action", "resource", "live", "shadow"], p.shadow.latest.map((e) =>
        [time(e.time_ms), e.principal_id, e.action, e.resource_kind + ":" + e.resource_id,
          e.decision + " by " + e.rule, e.shadow.decision + " by " + e.shadow.rule])));
    }
  }

  function place(error) {
    return error.file + (error.line ? ":" + error.line : "") + ": " + error.message;
  }

  // ---- wiring ----
  document.addEventListener("DOMContentLoaded", () => {
    for (const tab of document.querySelectorAll(".tab")) {
      tab.addEventListener("click", () => showTab(tab.dataset.tab));
    }
    $("server-token").addEventListener("input", (event) => {
      serverToken = event.target.value.trim();
    });
    $("ev-run").addEventListener("click", runEvaluation);
    $("f-apply").addEventListener("click", () => loadDecisions().catch((e) => showError(e.message)));
    $("f-live").addEventListener("change", toggleLive);
    $("p-run").addEventListener("click", loadPrincipal);
    $("p-download").addEventListener("click", download);
    showTab("evaluate");
    api("/console/api/policy").then((p) => {
      $("revision").textContent = "revision " + p.revision;
    }).catch(() => {});
  });
})();
