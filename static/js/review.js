/* The review page: one leased item at a time with all its annotations, the
 * current result and the model's suggestion; accept, reject (with a reason,
 * naming the annotation) or correct it through the API, then lease the next.
 * The lease keeps every other reviewer off the item until it ends. */
(() => {
  "use strict";

  const TW = window.Tokenworks;
  const { h } = TW;
  const config = TW.readConfig("review-config");
  const S = config.strings;
  const project = config.project;
  const schema = project.labelSchema || {};

  const root = document.getElementById("review");
  const bodyEl = document.getElementById("review-body");
  const itemEl = document.getElementById("review-item");
  const annotationsEl = document.getElementById("review-annotations");
  const resultEl = document.getElementById("review-result");
  const suggestionEl = document.getElementById("review-suggestion");
  const correctPanel = document.getElementById("review-correct");
  const correctEditorEl = document.getElementById("correct-editor");
  const emptyEl = document.getElementById("empty");
  const failureEl = document.getElementById("failure");
  const statusEl = document.getElementById("status");
  const formErrorEl = document.getElementById("form-error");
  const queueCountEl = document.getElementById("queue-count");
  const reviewedCountEl = document.getElementById("reviewed-count");
  const leaseTimerEl = document.getElementById("lease-timer");
  const buttons = {
    accept: document.getElementById("accept-button"),
    reject: document.getElementById("reject-button"),
    correct: document.getElementById("correct-button"),
    later: document.getElementById("later-button"),
    save: document.getElementById("save-correction-button"),
    undo: document.getElementById("undo-button"),
    cancel: document.getElementById("cancel-correction-button"),
  };
  const dialog = document.getElementById("reject-dialog");
  const rejectChoicesEl = document.getElementById("reject-annotations");
  const reasonEl = document.getElementById("reject-reason");
  const reasonErrorEl = dialog.querySelector("[data-error-for=reason]");
  const choiceErrorEl = dialog.querySelector("[data-error-for=annotation]");
  const rejectErrorEl = document.getElementById("reject-error");
  const confirmRejectButton = document.getElementById("reject-confirm-button");
  const cancelRejectButton = document.getElementById("reject-cancel-button");

  const url = (template, id) => template.replace("{id}", encodeURIComponent(id));

  let waiting = 0;
  let reviewed = 0;
  let current = null;
  /** When the lease on screen ends, on this page's clock (performance.now()). */
  let deadline = null;
  let editor = null;
  let statusTimer = null;

  /** loading | view | correct | reject | busy | empty | error */
  function setMode(mode) {
    root.dataset.mode = mode;
    root.dataset.state = mode === "view" || mode === "correct" || mode === "reject" ? "ready" : mode;
    const view = mode === "view";
    for (const name of ["accept", "reject", "correct", "later"]) buttons[name].disabled = !view;
    if (mode === "empty" || mode === "error" || mode === "loading") deadline = null;
    const correcting = mode === "correct";
    buttons.save.disabled = !correcting;
    buttons.cancel.disabled = !correcting;
    buttons.undo.disabled = !correcting || !editor || !editor.canUndo();
  }

  function status(message) {
    window.clearTimeout(statusTimer);
    statusEl.textContent = message || "";
    if (message) {
      statusTimer = window.setTimeout(() => {
        statusEl.textContent = "";
      }, 2500);
    }
  }

  function updateCounts() {
    queueCountEl.textContent = String(Math.max(0, waiting));
    reviewedCountEl.textContent = String(reviewed);
  }

  function tick() {
    // Past the lease's end the server hands the item to another reviewer.
    const left = deadline === null ? null : deadline - performance.now();
    leaseTimerEl.textContent = left === null ? "—" : TW.clock(Math.max(0, left));
    leaseTimerEl.classList.toggle("is-ending", left !== null && left < 60000);
  }

  // --- leasing ---------------------------------------------------------------------------
  /** Lease the next item (or get back the one this reviewer holds) and show it. */
  async function take() {
    setMode("loading");
    formErrorEl.textContent = "";
    const result = await TW.api("POST", config.api.reviewNext);
    if (result.status === 204) {
      showEmpty();
      return;
    }
    if (!result.ok || !result.data || !result.data.item) {
      showFailure(result);
      return;
    }
    const lease = result.data;
    // seconds_left, not expires_at: immune to skew between client and server clocks.
    deadline = performance.now() + Math.max(0, Number(lease.seconds_left) || 0) * 1000;
    if (typeof lease.waiting === "number") waiting = lease.waiting;
    updateCounts();
    current = lease.item;
    render(current);
    tick();
  }

  // --- rendering ---------------------------------------------------------------------------
  function figures(rows) {
    return h(
      "dl",
      { class: "figures" },
      rows
        .filter(([, value]) => value !== null && value !== undefined && value !== "")
        .map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, value))),
    );
  }

  function render(item) {
    editor = null;
    correctPanel.hidden = true;
    correctEditorEl.replaceChildren();
    emptyEl.hidden = true;
    failureEl.hidden = true;
    bodyEl.hidden = false;
    formErrorEl.textContent = "";
    root.dataset.item = String(item.id);

    itemEl.replaceChildren(
      h("h2", { class: "section-title" }, TW.format(S.item, { id: item.id })),
      TW.renderItemData(project.taskType, item.data, S),
    );

    const annotations = Array.isArray(item.annotations) ? item.annotations : [];
    annotationsEl.replaceChildren(
      ...annotations.map((annotation) =>
        h(
          "article",
          { class: "annotation-card", dataset: { annotation: annotation.id } },
          h(
            "header",
            {},
            h("strong", {}, TW.format(S.annotation, { id: annotation.id })),
            h(
              "span",
              { class: "muted" },
              TW.format(S.timeSpent, { seconds: ((annotation.time_spent_ms || 0) / 1000).toFixed(1) }),
            ),
          ),
          TW.renderAnswer(project.taskType, schema, item.data, annotation.answer, S),
        ),
      ),
    );

    const result = item.result;
    if (result) {
      resultEl.hidden = false;
      resultEl.replaceChildren(
        h("h3", {}, S.result),
        TW.renderAnswer(project.taskType, schema, item.data, result.answer, S),
        figures([
          [S.confidence, TW.percent(result.confidence)],
          [S.method, (S.methods && S.methods[result.method]) || result.method],
          [S.agreement, typeof result.agreement === "number" ? TW.percent(result.agreement) : null],
        ]),
      );
    } else {
      resultEl.hidden = true;
      resultEl.replaceChildren();
    }

    const suggestion = item.suggestion;
    if (suggestion && typeof suggestion === "object") {
      suggestionEl.hidden = false;
      suggestionEl.replaceChildren(
        h("h3", {}, S.suggestion),
        TW.renderAnswer(project.taskType, schema, item.data, suggestion.answer, S),
        figures([
          [S.confidence, TW.percent(Number(suggestion.confidence))],
          [S.model, suggestion.model || null],
        ]),
      );
    } else {
      suggestionEl.hidden = true;
      suggestionEl.replaceChildren();
    }

    setMode("view");
    if (itemEl.getBoundingClientRect().top < 0) itemEl.scrollIntoView({ block: "start" });
    root.focus({ preventScroll: true });
  }

  function showEmpty() {
    current = null;
    editor = null;
    delete root.dataset.item;
    bodyEl.hidden = true;
    emptyEl.hidden = false;
    waiting = 0;
    updateCounts();
    setMode("empty");
  }

  function showFailure(result) {
    bodyEl.hidden = true;
    const retry = h("button", { type: "button", class: "btn", onclick: () => take() }, S.nextItem);
    failureEl.replaceChildren(h("p", {}, TW.describeFailure(result, S)), h("p", {}, retry));
    failureEl.hidden = false;
    setMode("error");
  }

  // --- verdicts ----------------------------------------------------------------------------
  async function sendVerdict(body) {
    const previous = root.dataset.mode;
    setMode("busy");
    const result = await TW.api("POST", url(config.api.review, current.id), body);
    if (!result.ok) setMode(previous);
    return result;
  }

  async function done(message) {
    reviewed += 1;
    updateCounts();
    status(message);
    await take();
  }

  /** 409: the lease on screen is gone (expired, taken back); say so, offer the next item. */
  function leaseLost(result) {
    if (dialog.open) dialog.close();
    const errors = TW.errorsOf(result);
    const detail = errors.length ? errors.map((e) => e.detail).join(" ") : TW.describeFailure(result, S);
    const next = h("button", { type: "button", class: "btn", onclick: () => take() }, S.nextItem);
    formErrorEl.replaceChildren(h("span", {}, TW.format(S.reviewLeaseLost, { detail })), " ", next);
    setMode("lost");
    next.focus();
  }

  function showRest(errors, result) {
    const text = errors.length ? errors.map((e) => e.detail).join(" ") : TW.describeFailure(result, S);
    formErrorEl.textContent = text;
  }

  async function accept() {
    if (!current || root.dataset.mode !== "view") return;
    formErrorEl.textContent = "";
    const result = await sendVerdict({ verdict: "accept" });
    if (result.ok) await done(S.accepted);
    else if (result.status === 409) leaseLost(result);
    else showRest(TW.errorsOf(result), result);
  }

  /** Release the item for other reviewers; it comes back to this one after the rest. */
  async function later() {
    if (!current || root.dataset.mode !== "view") return;
    setMode("busy");
    const result = await TW.api("POST", url(config.api.release, current.id));
    // A lease that already ended (409) is released all the same: move on.
    if (!result.ok && result.status !== 409) {
      setMode("view");
      formErrorEl.textContent = TW.describeFailure(result, S);
      return;
    }
    status(S.released);
    await take();
  }

  // Reject: a dialog asks which annotation and why.
  function summary(answer) {
    const view = TW.renderAnswer(project.taskType, schema, current.data, answer, S);
    const text = view.textContent.replace(/\s+/g, " ").trim();
    return text.length > 80 ? `${text.slice(0, 79)}…` : text;
  }

  function openReject() {
    if (!current || root.dataset.mode !== "view") return;
    const annotations = current.annotations || [];
    rejectChoicesEl.replaceChildren(
      ...annotations.map((annotation, i) => {
        const id = `reject-choice-${annotation.id}`;
        const input = h("input", {
          type: "radio",
          name: "reject-annotation",
          id,
          value: String(annotation.id),
          checked: annotations.length === 1,
        });
        return h(
          "div",
          { class: "choice-row" },
          input,
          h(
            "label",
            { for: id },
            h("kbd", { "aria-hidden": "true" }, String(i + 1)),
            " ",
            h("strong", {}, TW.format(S.annotation, { id: annotation.id })),
            " ",
            h("span", { class: "muted" }, summary(annotation.answer)),
          ),
        );
      }),
    );
    reasonEl.value = "";
    for (const el of [reasonErrorEl, choiceErrorEl, rejectErrorEl]) el.textContent = "";
    setMode("reject");
    dialog.showModal();
    // Several annotations: the digits pick one first (then the reason box takes the focus).
    const first = rejectChoicesEl.querySelector("input[type=radio]");
    if (annotations.length > 1 && first) first.focus();
    else reasonEl.focus();
  }

  function closeReject() {
    if (dialog.open) dialog.close();
    if (root.dataset.mode === "reject") setMode("view");
    root.focus({ preventScroll: true });
  }

  dialog.addEventListener("close", () => {
    // The close event is queued: it can arrive after a quick "r" has opened the
    // dialog again, and must not switch the reopened dialog's page to view mode.
    if (!dialog.open && root.dataset.mode === "reject") setMode("view");
  });

  async function confirmReject() {
    if (root.dataset.mode !== "reject") return;
    const reason = reasonEl.value.trim();
    const chosen = rejectChoicesEl.querySelector("input[name=reject-annotation]:checked");
    for (const el of [reasonErrorEl, choiceErrorEl, rejectErrorEl]) el.textContent = "";
    let ok = true;
    if (!chosen && (current.annotations || []).length > 1) {
      choiceErrorEl.textContent = S.pickAnnotation;
      ok = false;
    }
    if (!reason) {
      reasonErrorEl.textContent = S.reasonRequired;
      reasonEl.focus();
      ok = false;
    }
    if (!ok) return;
    const result = await sendVerdict({
      verdict: "reject",
      reason,
      annotation: chosen ? Number(chosen.value) : null,
    });
    if (result.ok) {
      setMode("busy");
      closeReject();
      await done(S.rejected);
      return;
    }
    if (result.status === 409) {
      leaseLost(result);
      return;
    }
    const errors = TW.errorsOf(result);
    const rest = [];
    for (const error of errors) {
      if (error.attr === "reason") reasonErrorEl.textContent = error.detail;
      else if (error.attr === "annotation") choiceErrorEl.textContent = error.detail;
      else rest.push(error.detail);
    }
    if (rest.length || !errors.length) {
      rejectErrorEl.textContent = rest.length ? rest.join(" ") : TW.describeFailure(result, S);
    }
  }

  // Correct: the workspace's editor, pre-filled with the current result.
  function startCorrect() {
    if (!current || root.dataset.mode !== "view") return;
    const annotations = current.annotations || [];
    const initial = current.result
      ? current.result.answer
      : annotations.length
        ? annotations[0].answer
        : null;
    editor = TW.createEditor({
      taskType: project.taskType,
      schema,
      data: current.data || {},
      initial,
      strings: S,
      showData: false,
      notify: (message) => status(message),
      onChange: () => {
        buttons.undo.disabled = root.dataset.mode !== "correct" || !editor.canUndo();
      },
    });
    correctEditorEl.replaceChildren(editor.element);
    correctPanel.hidden = false;
    formErrorEl.textContent = "";
    setMode("correct");
    correctPanel.scrollIntoView({ block: "nearest" });
    editor.focus();
  }

  function cancelCorrect() {
    if (root.dataset.mode !== "correct") return;
    editor = null;
    correctPanel.hidden = true;
    correctEditorEl.replaceChildren();
    formErrorEl.textContent = "";
    setMode("view");
    root.focus({ preventScroll: true });
  }

  async function saveCorrection() {
    if (root.dataset.mode !== "correct" || !editor) return;
    formErrorEl.textContent = "";
    if (!editor.check()) return;
    const result = await sendVerdict({ verdict: "correct", corrected_answer: editor.answer() });
    if (result.ok) {
      await done(S.corrected);
      return;
    }
    if (result.status === 409) {
      leaseLost(result);
      return;
    }
    const errors = TW.errorsOf(result);
    const rest = editor.showErrors(errors);
    if (rest.length || !errors.length) showRest(rest, result);
  }

  function undo() {
    if (root.dataset.mode !== "correct" || !editor) return;
    status(editor.undo() ? S.undone : S.nothingToUndo);
  }

  buttons.accept.addEventListener("click", accept);
  buttons.reject.addEventListener("click", openReject);
  buttons.correct.addEventListener("click", startCorrect);
  buttons.later.addEventListener("click", later);
  buttons.save.addEventListener("click", saveCorrection);
  buttons.undo.addEventListener("click", undo);
  buttons.cancel.addEventListener("click", cancelCorrect);
  confirmRejectButton.addEventListener("click", confirmReject);
  cancelRejectButton.addEventListener("click", closeReject);

  // --- keyboard ---------------------------------------------------------------------------
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing || event.keyCode === 229) return;
    const mode = root.dataset.mode;
    const key = TW.keyOf(event);
    const target = event.target;
    const ctrlEnter = key === "Enter" && (event.ctrlKey || event.metaKey);

    if (mode === "reject") {
      if (ctrlEnter) {
        event.preventDefault();
        if (!event.repeat) confirmReject();
      } else if (key === "Escape") {
        event.preventDefault();
        closeReject();
      } else if (!TW.isTyping(target) && /^[1-9]$/.test(key)) {
        const radios = rejectChoicesEl.querySelectorAll("input[type=radio]");
        const radio = radios[Number(key) - 1];
        if (radio) {
          event.preventDefault();
          radio.checked = true;
          reasonEl.focus();
        }
      }
      return;
    }

    const inside = target === document.body || target === document.documentElement || root.contains(target);
    if (!inside) return;

    if (mode === "correct") {
      if (ctrlEnter) {
        event.preventDefault();
        if (!event.repeat) saveCorrection();
        return;
      }
      if (key === "Escape") {
        event.preventDefault();
        if (TW.isTyping(target)) {
          target.blur();
          editor.element.focus({ preventScroll: true });
        } else cancelCorrect();
        return;
      }
      if (TW.isTyping(target) || event.ctrlKey || event.metaKey || event.altKey) return;
      if (key === "Enter") {
        if (target.closest("a, summary, .ws-actions, .form-error")) return;
        event.preventDefault();
        if (!event.repeat) saveCorrection();
        return;
      }
      if (editor.handleKey(event)) {
        event.preventDefault();
        return;
      }
      if (key === "z") {
        event.preventDefault();
        undo();
      }
      return;
    }

    if (mode !== "view" || TW.isTyping(target) || event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    const action = { a: accept, r: openReject, c: startCorrect, n: later }[key];
    if (action) {
      event.preventDefault();
      action();
    }
  });

  root.setAttribute("tabindex", "-1");
  window.setInterval(tick, 1000);
  tick();
  take();
})();
