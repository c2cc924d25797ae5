/* The answer editor, one UI per task type, shared by the labeling workspace
 * and the reviewer's "correct" mode; plus read-only renderers for answers.
 *
 * Answers use the API's shapes (annotation/schemas.py). Span offsets are
 * Unicode code point offsets into data.text, as Python counts them; the
 * editor converts to and from JavaScript string indices (UTF-16 code units),
 * which differ only for characters outside the Basic Multilingual Plane
 * (emoji, rare CJK extension ideographs). */
(() => {
  "use strict";

  const TW = window.Tokenworks;
  const { h, kbd } = TW;
  const PALETTE = 8;
  let uid = 0;

  const labelsOf = (schema) => (Array.isArray(schema && schema.labels) ? schema.labels : []);

  function labelIndex(schema) {
    const map = new Map();
    labelsOf(schema).forEach((label, index) => map.set(label.value, { label, index }));
    return map;
  }

  const titleOf = (index, value) => {
    if (value === undefined || value === null) return "–";
    const entry = index.get(value);
    return entry ? entry.label.title || entry.label.value : String(value);
  };
  const colorOf = (index, value) => {
    const entry = index.get(value);
    return `c${entry ? entry.index % PALETTE : PALETTE - 1}`;
  };

  function hotkeyLabel(labels, event) {
    const key = TW.keyOf(event);
    return labels.find((label) => label.hotkey && label.hotkey.toLowerCase() === key) || null;
  }

  /** Code point offsets (Python's) <-> JavaScript string indices. */
  function offsetMaps(text) {
    const cpToJs = [0];
    for (const ch of text) cpToJs.push(cpToJs[cpToJs.length - 1] + ch.length);
    const jsToCp = new Array(text.length + 1).fill(-1);
    cpToJs.forEach((js, cp) => {
      jsToCp[js] = cp;
    });
    return { cpToJs, jsToCp, length: cpToJs.length - 1 };
  }

  const sortSpans = (spans) =>
    [...spans].sort(
      (x, y) => x.start - y.start || x.end - y.end || String(x.label).localeCompare(String(y.label)),
    );

  const isInt = (value) => typeof value === "number" && Number.isInteger(value);

  // --- answers: empty, normalized from a suggestion or result, API shape -----------

  function emptyState(taskType) {
    switch (taskType) {
      case "classification":
        return { label: null };
      case "multi_label":
        return { labels: [] };
      case "spans":
        return { spans: [] };
      case "text":
        return { text: "" };
      case "preference":
        return { choice: null, rationale: "" };
      case "rating":
        return { rating: null };
      default:
        return {};
    }
  }

  /** The editor state for a suggested or decided answer; what does not fit is dropped. */
  function stateFrom(taskType, schema, data, raw) {
    const state = emptyState(taskType);
    if (!raw || typeof raw !== "object") return state;
    const allowed = new Set(labelsOf(schema).map((label) => label.value));
    if (taskType === "classification") {
      if (allowed.has(raw.label)) state.label = raw.label;
    } else if (taskType === "multi_label") {
      const chosen = Array.isArray(raw.labels) ? raw.labels : [];
      state.labels = labelsOf(schema)
        .map((label) => label.value)
        .filter((value) => chosen.includes(value));
    } else if (taskType === "spans") {
      const length = offsetMaps(String((data && data.text) || "")).length;
      const spans = (Array.isArray(raw.spans) ? raw.spans : []).filter(
        (s) =>
          s && isInt(s.start) && isInt(s.end) && s.start >= 0 && s.end > s.start &&
          s.end <= length && allowed.has(s.label),
      );
      state.spans = sortSpans(spans.map((s) => ({ start: s.start, end: s.end, label: s.label })));
    } else if (taskType === "text") {
      if (typeof raw.text === "string") state.text = raw.text;
    } else if (taskType === "preference") {
      const choices = schema.allow_tie === false ? ["a", "b"] : ["a", "b", "tie"];
      if (choices.includes(raw.choice)) state.choice = raw.choice;
      if (typeof raw.rationale === "string") state.rationale = raw.rationale;
    } else if (taskType === "rating") {
      const min = isInt(schema.min) ? schema.min : 1;
      const max = isInt(schema.max) ? schema.max : 5;
      if (isInt(raw.rating) && raw.rating >= min && raw.rating <= max) state.rating = raw.rating;
    }
    return state;
  }

  function toApi(taskType, state) {
    switch (taskType) {
      case "classification":
        return { label: state.label };
      case "multi_label":
        return { labels: [...state.labels] };
      case "spans":
        return { spans: state.spans.map(({ start, end, label }) => ({ start, end, label })) };
      case "text":
        return { text: state.text };
      case "preference": {
        const answer = { choice: state.choice };
        if (state.rationale && state.rationale.trim()) answer.rationale = state.rationale;
        return answer;
      }
      case "rating":
        return { rating: state.rating };
      default:
        return {};
    }
  }

  /** Which control an error's attr names: "answer.spans[2].end" -> "spans". */
  function fieldOf(attr) {
    const match = /^(?:answer|corrected_answer)(?:\.([a-z_]+))?/.exec(attr || "");
    if (!match) return null;
    return match[1] || "answer";
  }

  // --- shared pieces ------------------------------------------------------------

  function dataBlock(title, text, extraClass = "") {
    return h(
      "section",
      { class: `data-block ${extraClass}`.trim() },
      h("h3", { class: "data-label" }, title),
      h("div", { class: "data-text" }, text === undefined || text === null ? "" : String(text)),
    );
  }

  function labelButton(label, index, onClick, { keepSelection = false } = {}) {
    const button = h(
      "button",
      {
        type: "button",
        class: `label-btn c${index % PALETTE}`,
        "aria-pressed": "false",
        "aria-keyshortcuts": label.hotkey || undefined,
        dataset: { value: label.value },
        onclick: onClick,
      },
      label.hotkey ? kbd(label.hotkey) : null,
      h("span", { class: "label-title" }, label.title || label.value),
    );
    // Keep the text selection (spans) when a label is clicked.
    if (keepSelection) button.addEventListener("mousedown", (event) => event.preventDefault());
    return button;
  }

  const setPressed = (button, on) => button.setAttribute("aria-pressed", on ? "true" : "false");

  /** A textarea whose typing is one undo step per edit (from focus to change). */
  function trackTyping(ctx, area, apply) {
    let before = null;
    area.addEventListener("focus", () => {
      before = TW.clone(ctx.get());
    });
    area.addEventListener("input", () => ctx.replace(apply(ctx.get(), area.value)));
    area.addEventListener("change", () => {
      if (before) ctx.remember(before);
      before = TW.clone(ctx.get());
    });
  }

  /** Text with spans highlighted: one element per stretch between span boundaries. */
  function renderSpanText(container, text, maps, spans, index, strings, interactive) {
    const placed = spans.map((s) => ({ ...s, js0: maps.cpToJs[s.start], js1: maps.cpToJs[s.end] }));
    const cuts = new Set([0, text.length]);
    for (const s of placed) {
      cuts.add(s.js0);
      cuts.add(s.js1);
    }
    const points = [...cuts].sort((a, b) => a - b);
    const parts = [];
    for (let i = 0; i + 1 < points.length; i += 1) {
      const [from, to] = [points[i], points[i + 1]];
      const seg = h("span", { class: "seg", dataset: { start: from, end: to } }, text.slice(from, to));
      const covering = placed.filter((s) => s.js0 <= from && s.js1 >= to);
      if (covering.length) {
        const inner = covering.reduce((a, b) => (b.js1 - b.js0 <= a.js1 - a.js0 ? b : a));
        seg.classList.add("marked", colorOf(index, inner.label));
        if (covering.length > 1) seg.classList.add("nested");
        if (covering.some((s) => s.js0 === from)) seg.classList.add("span-start");
        const ending = covering.filter((s) => s.js1 === to);
        if (ending.length) {
          seg.classList.add("span-end");
          seg.dataset.tag = ending.map((s) => titleOf(index, s.label)).join(" · ");
        }
        const names = covering.map((s) => titleOf(index, s.label)).join(", ");
        seg.title = interactive ? `${names} — ${strings.clickToRemove}` : names;
      }
      parts.push(seg);
    }
    container.replaceChildren(...parts);
  }

  function spanChips(text, maps, spans, index, strings, onRemove) {
    if (!spans.length) return [h("li", { class: "muted" }, strings.noSpans)];
    return spans.map((span) => {
      const quote = text.slice(maps.cpToJs[span.start], maps.cpToJs[span.end]);
      const inner = [
        h("span", { class: "span-chip-text" }, quote),
        h("span", { class: "span-chip-label" }, titleOf(index, span.label)),
        h("span", { class: "span-chip-offsets" }, `${span.start}–${span.end}`),
      ];
      if (!onRemove) return h("li", { class: `span-chip ${colorOf(index, span.label)}` }, inner);
      return h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: `span-chip ${colorOf(index, span.label)}`,
            title: strings.clickToRemove,
            onclick: () => onRemove(span),
          },
          inner,
          h("span", { class: "span-chip-x", "aria-hidden": "true" }, "×"),
        ),
      );
    });
  }

  // --- one builder per task type ----------------------------------------------------
  // A builder adds its controls to root and returns {render(state), handleKey(event),
  // check(state)?, focus()?}.

  const BUILDERS = {};

  BUILDERS.classification = (ctx, root) => {
    const labels = labelsOf(ctx.schema);
    if (ctx.showData) root.append(h("div", { class: "item-text data-text" }, ctx.data.text ?? ""));
    const buttons = labels.map((label, i) =>
      labelButton(label, i, () => ctx.set({ label: label.value })),
    );
    root.append(
      h("div", { class: "label-grid", role: "group", "aria-label": ctx.strings.labels }, buttons),
      ctx.slot("label"),
    );
    return {
      render(state) {
        buttons.forEach((b) => setPressed(b, b.dataset.value === state.label));
      },
      handleKey(event) {
        const label = hotkeyLabel(labels, event);
        if (!label) return false;
        ctx.set({ label: label.value });
        return true;
      },
      check: (state) => (state.label ? null : ["label", ctx.strings.chooseLabel]),
    };
  };

  BUILDERS.multi_label = (ctx, root) => {
    const labels = labelsOf(ctx.schema);
    const order = labels.map((label) => label.value);
    const toggle = (value) => {
      const current = new Set(ctx.get().labels);
      if (current.has(value)) current.delete(value);
      else current.add(value);
      ctx.set({ labels: order.filter((v) => current.has(v)) });
    };
    if (ctx.showData) root.append(h("div", { class: "item-text data-text" }, ctx.data.text ?? ""));
    const buttons = labels.map((label, i) => labelButton(label, i, () => toggle(label.value)));
    buttons.forEach((b) => b.classList.add("toggle"));
    root.append(
      h("div", { class: "label-grid", role: "group", "aria-label": ctx.strings.labels }, buttons),
      ctx.slot("labels"),
    );
    return {
      render(state) {
        buttons.forEach((b) => setPressed(b, state.labels.includes(b.dataset.value)));
      },
      handleKey(event) {
        const label = hotkeyLabel(labels, event);
        if (!label) return false;
        toggle(label.value);
        return true;
      },
    };
  };

  BUILDERS.spans = (ctx, root) => {
    const labels = labelsOf(ctx.schema);
    const index = labelIndex(ctx.schema);
    const text = String(ctx.data.text ?? "");
    const maps = offsetMaps(text);
    const container = h("div", {
      class: "item-text data-text span-text",
      dataset: { role: "span-text" },
    });
    const list = h("ul", { class: "span-list", "aria-label": ctx.strings.labels });

    /** A selection boundary as a JavaScript index into text, or null outside it. */
    function boundaryToIndex(node, offset) {
      if (node.nodeType === Node.TEXT_NODE) {
        const seg = node.parentElement && node.parentElement.closest(".seg");
        if (!seg || seg.parentElement !== container) return null;
        return Number(seg.dataset.start) + offset;
      }
      if (node === container) {
        const segs = container.children;
        return offset >= segs.length ? text.length : Number(segs[offset].dataset.start);
      }
      const seg = node instanceof Element ? node.closest(".seg") : null;
      if (!seg || seg.parentElement !== container) return null;
      return offset === 0 ? Number(seg.dataset.start) : Number(seg.dataset.end);
    }

    /** The selected characters as code point offsets, trimmed of white space. */
    function selectedOffsets() {
      const selection = window.getSelection();
      if (!selection || !selection.rangeCount || selection.isCollapsed) return null;
      const range = selection.getRangeAt(0).cloneRange();
      if (!range.intersectsNode(container)) return null;
      const whole = document.createRange();
      whole.selectNodeContents(container);
      if (range.compareBoundaryPoints(Range.START_TO_START, whole) < 0) {
        range.setStart(whole.startContainer, whole.startOffset);
      }
      if (range.compareBoundaryPoints(Range.END_TO_END, whole) > 0) {
        range.setEnd(whole.endContainer, whole.endOffset);
      }
      let start = boundaryToIndex(range.startContainer, range.startOffset);
      let end = boundaryToIndex(range.endContainer, range.endOffset);
      if (start === null || end === null) return null;
      while (start > 0 && maps.jsToCp[start] < 0) start -= 1; // never split a surrogate pair
      while (end < text.length && maps.jsToCp[end] < 0) end += 1;
      while (start < end && /\s/.test(text[start])) start += 1;
      while (end > start && /\s/.test(text[end - 1])) end -= 1;
      if (end <= start) return null;
      return { start: maps.jsToCp[start], end: maps.jsToCp[end] };
    }

    function addSpan(value) {
      const picked = selectedOffsets();
      if (!picked) {
        ctx.notify(ctx.strings.selectTextFirst);
        return;
      }
      const spans = ctx.get().spans;
      if (spans.some((s) => s.start === picked.start && s.end === picked.end && s.label === value)) {
        ctx.notify(ctx.strings.spanExists);
        return;
      }
      ctx.set({ spans: sortSpans([...spans, { ...picked, label: value }]) });
      window.getSelection().removeAllRanges();
    }

    function removeSpan(span) {
      ctx.set({ spans: ctx.get().spans.filter((s) => s !== span) });
      ctx.notify(ctx.strings.spanRemoved);
    }

    container.addEventListener("click", (event) => {
      const selection = window.getSelection();
      if (selection && !selection.isCollapsed) return; // the end of a drag, not a click
      const seg = event.target instanceof Element ? event.target.closest(".seg.marked") : null;
      if (!seg) return;
      const from = maps.jsToCp[Number(seg.dataset.start)];
      const to = maps.jsToCp[Number(seg.dataset.end)];
      const covering = ctx.get().spans.filter((s) => s.start <= from && s.end >= to);
      if (!covering.length) return;
      removeSpan(covering.reduce((a, b) => (b.end - b.start <= a.end - a.start ? b : a)));
    });

    const buttons = labels.map((label, i) =>
      labelButton(label, i, () => addSpan(label.value), { keepSelection: true }),
    );
    root.append(
      h("div", { class: "label-grid compact", role: "group", "aria-label": ctx.strings.labels }, buttons),
      container,
      ctx.slot("spans"),
      list,
    );
    return {
      render(state) {
        renderSpanText(container, text, maps, state.spans, index, ctx.strings, true);
        list.replaceChildren(...spanChips(text, maps, state.spans, index, ctx.strings, removeSpan));
      },
      handleKey(event) {
        const label = hotkeyLabel(labels, event);
        if (!label) return false;
        addSpan(label.value);
        return true;
      },
    };
  };

  BUILDERS.text = (ctx, root) => {
    const { min_length: min, max_length: max } = ctx.schema;
    if (ctx.showData) {
      if (ctx.data.system) root.append(dataBlock(ctx.strings.system, ctx.data.system, "data-system"));
      root.append(dataBlock(ctx.strings.prompt, ctx.data.prompt));
    }
    uid += 1;
    const id = `answer-text-${uid}`;
    const area = h("textarea", { id, class: "answer-text", rows: "9", dataset: { field: "text" } });
    const counter = h("span", { class: "char-count" });
    const count = () => {
      const n = [...area.value].length;
      counter.textContent = isInt(min) && isInt(max)
        ? TW.format(ctx.strings.charactersRange, { count: n, min, max })
        : TW.format(ctx.strings.characters, { count: n });
      counter.classList.toggle("out-of-range", isInt(min) && isInt(max) && (n < min || n > max));
    };
    area.addEventListener("input", count);
    trackTyping(ctx, area, (state, value) => ({ ...state, text: value }));
    root.append(
      h("label", { for: id, class: "field-label" }, ctx.strings.yourAnswer),
      area,
      h("div", { class: "field-foot" }, ctx.slot("text"), counter),
    );
    return {
      render(state) {
        if (area.value !== state.text) area.value = state.text;
        count();
      },
      handleKey: () => false,
      focus: () => area.focus({ preventScroll: true }),
    };
  };

  BUILDERS.preference = (ctx, root) => {
    const allowTie = ctx.schema.allow_tie !== false;
    const rationale = ctx.schema.rationale || "optional";
    const options = [
      { value: "a", key: "1", title: ctx.strings.responseA, text: ctx.data.response_a },
      { value: "b", key: "2", title: ctx.strings.responseB, text: ctx.data.response_b },
    ];
    const choose = (value) => ctx.set({ ...ctx.get(), choice: value });
    if (ctx.showData) root.append(dataBlock(ctx.strings.prompt, ctx.data.prompt));
    const pickers = [];
    const cards = options.map((option) => {
      const pick = h(
        "button",
        {
          type: "button",
          class: "label-btn pref-pick",
          "aria-pressed": "false",
          "aria-keyshortcuts": option.key,
          dataset: { value: option.value },
          onclick: () => choose(option.value),
        },
        kbd(option.key),
        h("span", { class: "label-title" }, option.title),
      );
      pickers.push(pick);
      return h(
        "section",
        { class: "pref-card", dataset: { choice: option.value } },
        pick,
        ctx.showData ? h("div", { class: "data-text" }, option.text ?? "") : null,
      );
    });
    root.append(h("div", { class: "pref-grid" }, cards));
    if (allowTie) {
      const tie = h(
        "button",
        {
          type: "button",
          class: "label-btn pref-tie",
          "aria-pressed": "false",
          "aria-keyshortcuts": "3",
          dataset: { value: "tie" },
          onclick: () => choose("tie"),
        },
        kbd("3"),
        h("span", { class: "label-title" }, ctx.strings.tie),
      );
      pickers.push(tie);
      root.append(h("div", { class: "label-grid" }, tie));
    }
    root.append(ctx.slot("choice"));
    let area = null;
    if (rationale !== "none") {
      uid += 1;
      const id = `answer-rationale-${uid}`;
      area = h("textarea", { id, class: "answer-text short", rows: "3", dataset: { field: "rationale" } });
      if (rationale === "required") area.setAttribute("aria-required", "true");
      trackTyping(ctx, area, (state, value) => ({ ...state, rationale: value }));
      root.append(
        h(
          "label",
          { for: id, class: "field-label" },
          rationale === "required" ? ctx.strings.rationaleRequired : ctx.strings.rationaleOptional,
        ),
        area,
        ctx.slot("rationale"),
      );
    }
    return {
      render(state) {
        pickers.forEach((b) => setPressed(b, b.dataset.value === state.choice));
        cards.forEach((c) => c.classList.toggle("chosen", c.dataset.choice === state.choice));
        if (area && area.value !== state.rationale) area.value = state.rationale;
      },
      handleKey(event) {
        const key = TW.keyOf(event);
        const value = { 1: "a", 2: "b", 3: allowTie ? "tie" : null }[key];
        if (!value) return false;
        choose(value);
        return true;
      },
      check: (state) => (state.choice ? null : ["choice", ctx.strings.chooseOption]),
    };
  };

  BUILDERS.rating = (ctx, root) => {
    const min = isInt(ctx.schema.min) ? ctx.schema.min : 1;
    const max = isInt(ctx.schema.max) ? ctx.schema.max : 5;
    const rubric = ctx.schema.rubric || {};
    // Digits name scores directly; 0 stands for 10 on a scale without a 0.
    const keyFor = (score) => {
      if (score >= 0 && score <= 9) return String(score);
      if (score === 10 && min > 0) return "0";
      return null;
    };
    if (ctx.showData) {
      if (ctx.data.prompt) root.append(dataBlock(ctx.strings.prompt, ctx.data.prompt));
      root.append(dataBlock(ctx.strings.response, ctx.data.response));
    }
    const buttons = [];
    for (let score = min; score <= max; score += 1) {
      const key = keyFor(score);
      buttons.push(
        h(
          "button",
          {
            type: "button",
            class: "score-btn",
            "aria-pressed": "false",
            "aria-keyshortcuts": key || undefined,
            dataset: { value: score, key: key || "" },
            onclick: () => ctx.set({ rating: score }),
          },
          key ? kbd(key) : h("span", { class: "kbd-spacer" }),
          h("span", { class: "score-value" }, String(score)),
          h("span", { class: "score-rubric" }, rubric[String(score)] || ""),
        ),
      );
    }
    root.append(
      h("div", { class: "score-list", role: "group", "aria-label": ctx.strings.rubric }, buttons),
      ctx.slot("rating"),
    );
    return {
      render(state) {
        buttons.forEach((b) => setPressed(b, Number(b.dataset.value) === state.rating));
      },
      handleKey(event) {
        const key = TW.keyOf(event);
        const button = buttons.find((b) => b.dataset.key && b.dataset.key === key);
        if (!button) return false;
        ctx.set({ rating: Number(button.dataset.value) });
        return true;
      },
      check: (state) => (state.rating === null ? ["rating", ctx.strings.chooseRating] : null),
    };
  };

  /**
   * An editor for one item.
   * options: {taskType, schema, data, initial, strings, showData, onChange, notify}
   */
  TW.createEditor = (options) => {
    const { taskType, strings } = options;
    const schema = options.schema || {};
    const data = options.data || {};
    const onChange = options.onChange || (() => {});
    let state = stateFrom(taskType, schema, data, options.initial);
    const history = [];
    const slots = {};
    const root = h("div", { class: `editor editor-${taskType}`, tabindex: "-1" });
    const ctx = {
      schema,
      data,
      strings,
      showData: options.showData !== false,
      notify: options.notify || (() => {}),
      get: () => state,
      set(next) {
        if (JSON.stringify(next) === JSON.stringify(state)) return;
        history.push(TW.clone(state));
        state = next;
        builder.render(state);
        onChange(state);
      },
      replace(next) {
        state = next;
        onChange(state);
      },
      remember(previous) {
        history.push(TW.clone(previous));
        onChange(state);
      },
      slot(name) {
        const el = h("p", { class: "field-error", role: "alert", dataset: { errorFor: name } });
        slots[name] = el;
        return el;
      },
    };
    const build = BUILDERS[taskType];
    if (!build) throw new Error(`unknown task type ${taskType}`);
    const builder = build(ctx, root);
    root.append(ctx.slot("answer"));
    builder.render(state);

    const editor = {
      element: root,
      answer: () => toApi(taskType, state),
      canUndo: () => history.length > 0,
      handleKey: (event) => builder.handleKey(event),
      undo() {
        if (!history.length) return false;
        state = history.pop();
        builder.render(state);
        onChange(state);
        return true;
      },
      clearErrors() {
        for (const el of Object.values(slots)) el.textContent = "";
        root.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
      },
      /** Client-side check for "nothing chosen yet"; true when the answer may be sent. */
      check() {
        const problem = builder.check ? builder.check(state) : null;
        if (!problem) return true;
        editor.clearErrors();
        slots[problem[0]].textContent = problem[1];
        return false;
      },
      /** Shows the answer's errors beside their controls; returns the others. */
      showErrors(errors) {
        editor.clearErrors();
        const rest = [];
        for (const error of errors) {
          const field = fieldOf(error.attr);
          if (field === null) {
            rest.push(error);
            continue;
          }
          const slot = slots[field] || slots.answer;
          slot.textContent = slot.textContent ? `${slot.textContent} ${error.detail}` : error.detail;
          const control = root.querySelector(`[data-field="${field}"]`);
          if (control) control.setAttribute("aria-invalid", "true");
        }
        return rest;
      },
      focus() {
        if (builder.focus) builder.focus();
        else root.focus({ preventScroll: true });
      },
    };
    return editor;
  };

  // --- read-only rendering (review page) ------------------------------------------------

  function chip(text, extraClass = "") {
    return h("span", { class: `answer-chip ${extraClass}`.trim() }, text);
  }

  /** An answer as the reviewer sees it. */
  TW.renderAnswer = (taskType, schema, data, answer, strings) => {
    const wrap = h("div", { class: `answer-view answer-${taskType}` });
    const index = labelIndex(schema || {});
    const a = answer && typeof answer === "object" ? answer : {};
    if (taskType === "classification") {
      wrap.append(chip(titleOf(index, a.label), colorOf(index, a.label)));
    } else if (taskType === "multi_label") {
      const labels = Array.isArray(a.labels) ? a.labels : [];
      if (!labels.length) wrap.append(h("span", { class: "muted" }, strings.none));
      labels.forEach((value) => wrap.append(chip(titleOf(index, value), colorOf(index, value))));
    } else if (taskType === "spans") {
      const text = String((data && data.text) || "");
      const maps = offsetMaps(text);
      const spans = stateFrom("spans", schema || {}, data, a).spans;
      const box = h("div", { class: "data-text span-text compact" });
      renderSpanText(box, text, maps, spans, index, strings, false);
      wrap.append(box, h("ul", { class: "span-list" }, spanChips(text, maps, spans, index, strings)));
    } else if (taskType === "text") {
      wrap.append(h("div", { class: "data-text" }, String(a.text ?? "")));
    } else if (taskType === "preference") {
      const names = { a: strings.responseA, b: strings.responseB, tie: strings.tie };
      wrap.append(chip(names[a.choice] || "–", `choice-${a.choice}`));
      if (a.rationale) wrap.append(h("div", { class: "data-text rationale" }, a.rationale));
    } else if (taskType === "rating") {
      const max = schema && isInt(schema.max) ? schema.max : 5;
      wrap.append(chip(`${isInt(a.rating) ? a.rating : "–"} / ${max}`, "rating-chip"));
      const rubric = (schema && schema.rubric) || {};
      if (rubric[String(a.rating)]) wrap.append(h("p", { class: "muted" }, rubric[String(a.rating)]));
    } else {
      wrap.append(h("pre", {}, JSON.stringify(a, null, 2)));
    }
    return wrap;
  };

  /** The item's data as the reviewer sees it. */
  TW.renderItemData = (taskType, data, strings) => {
    const d = data || {};
    const wrap = h("div", { class: "item-data" });
    if (taskType === "text") {
      if (d.system) wrap.append(dataBlock(strings.system, d.system, "data-system"));
      wrap.append(dataBlock(strings.prompt, d.prompt));
    } else if (taskType === "preference") {
      wrap.append(
        dataBlock(strings.prompt, d.prompt),
        h(
          "div",
          { class: "pref-grid" },
          dataBlock(strings.responseA, d.response_a, "pref-card"),
          dataBlock(strings.responseB, d.response_b, "pref-card"),
        ),
      );
    } else if (taskType === "rating") {
      if (d.prompt) wrap.append(dataBlock(strings.prompt, d.prompt));
      wrap.append(dataBlock(strings.response, d.response));
    } else {
      wrap.append(h("div", { class: "item-text data-text" }, d.text ?? ""));
    }
    return wrap;
  };

  TW.editorInternals = { offsetMaps, stateFrom, toApi, fieldOf };
})();
