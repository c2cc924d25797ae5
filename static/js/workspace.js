/* The labeling workspace: lease a task, show it with one editor per task
 * type, submit or skip it through the API, and show the next task at once
 * (it is leased while the current one is on screen; the API allows two). */
(() => {
  "use strict";

  const TW = window.Tokenworks;
  const { h } = TW;
  const config = TW.readConfig("workspace-config");
  const S = config.strings;
  const project = config.project;

  const ws = document.getElementById("workspace");
  const taskEl = document.getElementById("task");
  const suggestionEl = document.getElementById("suggestion");
  const emptyEl = document.getElementById("empty");
  const failureEl = document.getElementById("failure");
  const statusEl = document.getElementById("status");
  const formErrorEl = document.getElementById("form-error");
  const submitButton = document.getElementById("submit-button");
  const skipButton = document.getElementById("skip-button");
  const undoButton = document.getElementById("undo-button");
  const doneEl = document.getElementById("done-count");
  const taskTimerEl = document.getElementById("task-timer");
  const sessionTimerEl = document.getElementById("session-timer");
  const leaseTimerEl = document.getElementById("lease-timer");

  const url = (template, id) => template.replace("{id}", encodeURIComponent(id));

  // A label's own hotkey wins over S and Z: drop the hint that no longer works.
  const labelKeys = new Set(
    ((project.labelSchema && project.labelSchema.labels) || []).map((l) =>
      String(l.hotkey || "").toLowerCase(),
    ),
  );
  if (labelKeys.has("s")) skipButton.querySelector("kbd").hidden = true;
  if (labelKeys.has("z")) undoButton.querySelector("kbd").hidden = true;

  // --- session progress (survives a reload of the tab) -------------------------------
  const storageKey = (name) => `tokenworks:${name}:${project.id}`;
  const stored = (name, fallback) => {
    try {
      const value = Number(window.sessionStorage.getItem(storageKey(name)));
      return Number.isFinite(value) && value > 0 ? value : fallback;
    } catch (error) {
      return fallback;
    }
  };
  const store = (name, value) => {
    try {
      window.sessionStorage.setItem(storageKey(name), String(value));
    } catch (error) {
      /* private mode: the counter just restarts */
    }
  };
  let doneCount = stored("done", 0);
  const sessionStart = stored("started", Date.now());
  store("started", sessionStart);
  doneEl.textContent = String(doneCount);

  // --- state ----------------------------------------------------------------------------
  /** The task on screen: {lease, editor, shownAt, hiddenMs, hiddenAt}. */
  let current = null;
  /** The next task, leased while this one is worked on: a promise of an outcome. */
  let prefetch = null;
  let busy = false;
  let statusTimer = null;

  function setState(name) {
    ws.dataset.state = name;
    const ready = name === "ready";
    submitButton.disabled = !ready;
    skipButton.disabled = !ready;
    undoButton.disabled = !ready || !current || !current.editor.canUndo();
  }

  let justSaved = false;

  function status(message, { sticky = false } = {}) {
    window.clearTimeout(statusTimer);
    statusEl.textContent = message || "";
    if (message && !sticky) {
      statusTimer = window.setTimeout(() => {
        statusEl.textContent = "";
      }, 2500);
    }
  }

  function elapsed() {
    if (!current) return 0;
    const now = performance.now();
    const hidden = current.hiddenMs + (current.hiddenAt === null ? 0 : now - current.hiddenAt);
    return Math.max(0, Math.round(now - current.shownAt - hidden));
  }

  function tick() {
    taskTimerEl.textContent = TW.clock(elapsed());
    sessionTimerEl.textContent = TW.clock(Date.now() - sessionStart);
    // The lease's countdown: past it the server may hand the task to someone else.
    const left = current && Number.isFinite(current.deadline) ? current.deadline - performance.now() : null;
    leaseTimerEl.textContent = left === null ? "—" : TW.clock(Math.max(0, left));
    leaseTimerEl.classList.toggle("is-ending", left !== null && left < 60000);
  }

  // Time on a task counts while the page is visible only.
  document.addEventListener("visibilitychange", () => {
    if (!current) return;
    if (document.hidden) current.hiddenAt = performance.now();
    else if (current.hiddenAt !== null) {
      current.hiddenMs += performance.now() - current.hiddenAt;
      current.hiddenAt = null;
    }
  });

  // --- leases -----------------------------------------------------------------------------
  /** POST next/: {kind: "lease", lease, deadline} | {kind: "empty"} | {kind: "error", result}. */
  async function fetchLease(holding = []) {
    // `holding`: leases already on this page, so the server hands out another
    // active lease (or a new one) rather than one we show.
    const result = await TW.api("POST", config.api.next, { holding });
    if (result.status === 200 && result.data && result.data.item) {
      const lease = result.data;
      const length = Date.parse(lease.expires_at) - Date.parse(lease.leased_at);
      // A deadline on this page's clock, immune to skew between client and server.
      const deadline = performance.now() + (Number.isFinite(length) ? length : 0);
      return { kind: "lease", lease, deadline };
    }
    if (result.status === 204) return { kind: "empty" };
    return { kind: "error", result };
  }

  function startPrefetch(currentId) {
    ws.dataset.prefetch = "pending";
    const promise = fetchLease(currentId ? [currentId] : []).then((outcome) => {
      // With two leases already held (after a reload) the API hands back the
      // one on screen: there is nothing to prefetch then.
      if (outcome.kind === "lease" && outcome.lease.id === currentId) return { kind: "same" };
      return outcome;
    });
    prefetch = promise;
    promise.then((outcome) => {
      if (prefetch === promise) ws.dataset.prefetch = outcome.kind === "lease" ? "ready" : "none";
    });
  }

  async function advance() {
    busy = true;
    setState("busy");
    let outcome = prefetch ? await prefetch : null;
    prefetch = null;
    const fresh = outcome && outcome.kind === "lease" && outcome.deadline - performance.now() > 5000;
    if (!fresh) outcome = await fetchLease();
    busy = false;
    handle(outcome);
  }

  function handle(outcome) {
    if (outcome.kind === "lease") show(outcome.lease, outcome.deadline);
    else if (outcome.kind === "empty") showEmpty();
    else showFailure(outcome.result);
  }

  // --- screens ----------------------------------------------------------------------------
  function renderSuggestion(suggestion) {
    if (!suggestion) {
      suggestionEl.classList.remove("is-hint");
      suggestionEl.classList.add("is-empty");
      suggestionEl.replaceChildren(h("span", { class: "muted" }, S.noSuggestion));
      delete suggestionEl.dataset.confidence;
      return;
    }
    suggestionEl.classList.remove("is-empty");
    const confidence = Number(suggestion.confidence);
    const prefilled = prefills(suggestion);
    suggestionEl.classList.toggle("is-hint", !prefilled);
    suggestionEl.dataset.prefilled = String(prefilled);
    const text = prefilled
      ? TW.format(S.suggestionPrefilled, {
          model: suggestion.model || "?",
          confidence: TW.percent(confidence),
        })
      : TW.format(S.suggestionHint, {
          model: suggestion.model || "?",
          answer: answerSummary(suggestion.answer),
          confidence: TW.percent(confidence),
          floor: TW.percent(Number(project.suggestionFloor || 0)),
        });
    suggestionEl.replaceChildren(
      h("span", { class: "suggestion-title" }, S.suggestion),
      h("span", { class: "suggestion-text" }, text),
      h(
        "span",
        { class: "meter", "aria-hidden": "true" },
        meterFill(confidence),
      ),
    );
    suggestionEl.dataset.confidence = String(confidence);
  }

  /** A suggested answer in a few words, for a hint (labels, a choice, a score or spans). */
  function answerSummary(answer) {
    if (!answer || typeof answer !== "object") return "?";
    const titles = {};
    for (const label of (project.labelSchema && project.labelSchema.labels) || []) {
      if (label && typeof label === "object") titles[label.value] = label.title || label.value;
    }
    const named = (value) => titles[value] || String(value);
    if (answer.label !== undefined) return named(answer.label);
    if (Array.isArray(answer.labels)) return answer.labels.map(named).join(", ");
    if (answer.choice !== undefined) return String(answer.choice);
    if (answer.score !== undefined) return String(answer.score);
    if (Array.isArray(answer.spans)) {
      return answer.spans.map((s) => `${s.text || ""} (${named(s.label)})`).join(", ") || S.none;
    }
    if (typeof answer.text === "string") return answer.text.slice(0, 60);
    return "?";
  }

  // Width through the CSSOM: a style attribute would break the Content-Security-Policy.
  function meterFill(confidence) {
    const fill = h("span", { class: "meter-fill" });
    fill.style.width = `${Math.round(Math.min(1, Math.max(0, confidence || 0)) * 100)}%`;
    return fill;
  }

  // Only a suggestion at least as sure as the project's floor pre-fills the answer.
  function prefills(suggestion) {
    if (!suggestion) return false;
    const floor = Number(project.suggestionFloor || 0);
    return Number(suggestion.confidence) >= floor;
  }

  function show(lease, deadline) {
    const suggestion =
      lease.item.suggestion && typeof lease.item.suggestion === "object" ? lease.item.suggestion : null;
    const editor = TW.createEditor({
      taskType: project.taskType,
      schema: project.labelSchema,
      data: lease.item.data || {},
      initial: prefills(suggestion) ? suggestion.answer : null,
      strings: S,
      notify: (message) => status(message),
      onChange: () => {
        undoButton.disabled = busy || !editor.canUndo();
        // "Saved." spoke of the previous task: gone once this one is touched.
        if (statusEl.textContent === S.previousSaved) status("");
      },
    });
    emptyEl.hidden = true;
    failureEl.hidden = true;
    formErrorEl.textContent = "";
    taskEl.replaceChildren(editor.element);
    renderSuggestion(suggestion);
    current = {
      lease,
      editor,
      shownAt: performance.now(),
      deadline,
      hiddenMs: 0,
      hiddenAt: document.hidden ? performance.now() : null,
    };
    ws.dataset.assignment = String(lease.id);
    ws.dataset.item = String(lease.item.id);
    setState("ready");
    tick();
    if (justSaved) status(S.previousSaved);
    justSaved = false;
    if (taskEl.getBoundingClientRect().top < 0) taskEl.scrollIntoView({ block: "start" });
    editor.focus();
    startPrefetch(lease.id);
  }

  function clearTask() {
    current = null;
    delete ws.dataset.assignment;
    delete ws.dataset.item;
    taskEl.replaceChildren();
    renderSuggestion(null);
    formErrorEl.textContent = "";
  }

  function showEmpty() {
    clearTask();
    emptyEl.hidden = false;
    setState("empty");
    tick();
    const link = emptyEl.querySelector("a");
    if (link) link.focus({ preventScroll: true });
  }

  function showFailure(result) {
    clearTask();
    const errors = TW.errorsOf(result);
    let message;
    if (result.status === 403 && errors.length) {
      message = TW.format(S.notAllowed, { detail: errors.map((e) => e.detail).join(" ") });
    } else {
      message = TW.describeFailure(result, S);
    }
    // Trying again helps after a network or server error, not after a refusal.
    const retry =
      result.status === 403
        ? null
        : h("button", { type: "button", class: "btn", onclick: () => start() }, S.nextTask);
    const back = h("a", { class: "btn btn-quiet", href: config.urls.projects }, S.backToProjects);
    failureEl.replaceChildren(h("p", {}, message), h("p", { class: "row" }, retry, back));
    failureEl.hidden = false;
    setState("error");
  }

  /** The lease on screen cannot be submitted any more (expired, taken back). */
  function leaseLost(errors) {
    const detail = errors.map((e) => e.detail).join(" ");
    const next = h("button", { type: "button", class: "btn", onclick: () => advance() }, S.nextTask);
    formErrorEl.replaceChildren(
      h("span", {}, TW.format(S.leaseLost, { detail })),
      " ",
      next,
    );
    next.focus();
  }

  // --- actions ----------------------------------------------------------------------------
  async function submit() {
    if (!current || busy) return;
    const { editor, lease } = current;
    formErrorEl.textContent = "";
    if (!editor.check()) return;
    busy = true;
    setState("busy");
    const result = await TW.api("POST", url(config.api.submit, lease.id), {
      answer: editor.answer(),
      time_spent_ms: elapsed(),
    });
    if (result.ok) {
      doneCount += 1;
      store("done", doneCount);
      doneEl.textContent = String(doneCount);
      status(S.saved);
      justSaved = true;
      await advance();
      return;
    }
    busy = false;
    setState("ready");
    const errors = TW.errorsOf(result);
    if (result.status === 400 && errors.length) {
      const rest = editor.showErrors(errors);
      if (rest.some((e) => e.attr === "assignment")) {
        leaseLost(rest);
        return;
      }
      if (rest.length) formErrorEl.textContent = rest.map((e) => e.detail).join(" ");
      const invalid = editor.element.querySelector("[aria-invalid=true]");
      if (invalid) invalid.focus();
      return;
    }
    if (result.status === 403 || result.status === 404) {
      leaseLost(errors.length ? errors : [{ detail: TW.describeFailure(result, S) }]);
      return;
    }
    formErrorEl.textContent = TW.describeFailure(result, S);
  }

  async function skip() {
    if (!current || busy) return;
    busy = true;
    setState("busy");
    formErrorEl.textContent = "";
    const result = await TW.api("POST", url(config.api.skip, current.lease.id));
    if (result.ok) {
      status(S.skipped);
      await advance();
      return;
    }
    busy = false;
    setState("ready");
    if ([400, 403, 404].includes(result.status)) {
      const errors = TW.errorsOf(result);
      leaseLost(errors.length ? errors : [{ detail: TW.describeFailure(result, S) }]);
      return;
    }
    formErrorEl.textContent = TW.describeFailure(result, S);
  }

  function undo() {
    if (!current || busy) return;
    if (current.editor.undo()) status(S.undone);
    else status(S.nothingToUndo);
  }

  submitButton.addEventListener("click", submit);
  skipButton.addEventListener("click", skip);
  undoButton.addEventListener("click", undo);

  // --- keyboard ---------------------------------------------------------------------------
  // Digits (or a label's own hotkey) pick, Enter submits, S skips, Z undoes.
  // While typing in a text box only Ctrl+Enter (submit) and Esc (leave it) count.
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing || event.keyCode === 229) return;
    const target = event.target;
    const inside = target === document.body || target === document.documentElement || ws.contains(target);
    if (!inside || !current || ws.dataset.state !== "ready") return;
    const key = TW.keyOf(event);
    if (key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (!event.repeat) submit();
      return;
    }
    if (TW.isTyping(target)) {
      if (key === "Escape") {
        event.preventDefault();
        target.blur();
        current.editor.element.focus({ preventScroll: true });
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (key === "Enter") {
      // Links and the action buttons keep their own Enter.
      if (target.closest("a, summary, .ws-actions, .form-error, .ws-failure")) return;
      event.preventDefault();
      if (!event.repeat) submit();
      return;
    }
    if (current.editor.handleKey(event)) {
      event.preventDefault();
      return;
    }
    if (key === "s") {
      event.preventDefault();
      skip();
    } else if (key === "z") {
      event.preventDefault();
      undo();
    }
  });

  // --- start ------------------------------------------------------------------------------
  async function start() {
    failureEl.hidden = true;
    setState("loading");
    handle(await fetchLease());
  }

  window.setInterval(tick, 1000);
  tick();
  start();
})();
