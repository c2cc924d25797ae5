/* Tokenworks page helpers: API calls with the session and CSRF token, DOM
 * building, string formatting. Plain ES2020, no framework, no build step. */
(() => {
  "use strict";

  const TW = (window.Tokenworks = window.Tokenworks || {});

  /** The JSON a view rendered into the page with json_script. */
  TW.readConfig = (id) => JSON.parse(document.getElementById(id).textContent);

  /** "%(name)s" placeholders, as Django's gettext strings use them. */
  TW.format = (template, params = {}) =>
    String(template).replace(/%\((\w+)\)s/g, (_, key) => (key in params ? String(params[key]) : ""));

  TW.csrfToken = () => {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  };

  /**
   * One API call. Never throws: resolves to {ok, status, data, network}.
   * status 0 with network=true means the server could not be reached.
   */
  TW.api = async (method, url, body) => {
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin" };
    if (method !== "GET") headers["X-CSRFToken"] = TW.csrfToken();
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      return { ok: false, status: 0, data: null, network: true };
    }
    let data = null;
    if (response.status !== 204) {
      const text = await response.text().catch(() => "");
      try {
        data = text ? JSON.parse(text) : null;
      } catch (error) {
        data = null;
      }
    }
    return { ok: response.ok, status: response.status, data, network: false };
  };

  /** The standard error list of an API answer ([] when there is none). */
  TW.errorsOf = (result) =>
    result && result.data && Array.isArray(result.data.errors) ? result.data.errors : [];

  /** A human sentence for a failed call that no field claims. */
  TW.describeFailure = (result, strings) => {
    if (!result || result.network) return strings.networkError;
    const errors = TW.errorsOf(result);
    if (errors.length) return errors.map((e) => e.detail).join(" ");
    return TW.format(strings.serverError, { status: result.status });
  };

  /**
   * Build an element: h("button", {class: "x", dataset: {a: 1}, onclick: f}, "text", child).
   * Text is always set as text, never parsed as HTML.
   */
  TW.h = (tag, attrs = {}, ...children) => {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else if (value === true) el.setAttribute(key, "");
      else el.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  };

  /** A key hint: <kbd>1</kbd>. */
  TW.kbd = (key) => TW.h("kbd", { "aria-hidden": "true" }, key);

  /** True while the user types somewhere a plain key must keep its meaning. */
  TW.isTyping = (target) => {
    if (!target || !(target instanceof Element)) return false;
    if (target.isContentEditable) return true;
    const tag = target.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag !== "INPUT") return false;
    const type = (target.getAttribute("type") || "text").toLowerCase();
    return !["button", "submit", "reset", "checkbox", "radio", "range", "color"].includes(type);
  };

  /** A key event's key for hotkey matching ("S" and "s" are the same key). */
  TW.keyOf = (event) => (event.key.length === 1 ? event.key.toLowerCase() : event.key);

  TW.percent = (share) => {
    if (typeof share !== "number" || Number.isNaN(share)) return "–";
    const lang = document.documentElement.lang || undefined;
    return new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 0 }).format(share);
  };

  TW.clock = (ms) => {
    const total = Math.max(0, Math.floor(ms / 1000));
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const seconds = String(total % 60).padStart(2, "0");
    return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
  };

  TW.clone = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));
})();
