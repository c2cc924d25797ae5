/* The answer editor's core, shared by the labeling workspace and the reviewer's
 * "correct" mode; plus read-only renderers for answers.
 *
 * Each task type is a component in static/js/task-types/<type>.js that calls
 * TW.registerTaskType(name, component); the core looks the component up by
 * the project's task type and never branches on it. A component provides:
 *   empty()                          the editor state with nothing chosen
 *   fromAnswer(state, raw, ctx)      fill state from a suggested or decided answer
 *                                    (ctx: {schema, data, allowed}); drop what does not fit
 *   toApi(state)                     the answer in the API's shape
 *   build(ctx, root)                 add controls to root; returns {render(state),
 *                                    handleKey(event), check(state)?, focus()?}
 *   renderAnswer(wrap, answer, ctx)  read-only answer (ctx: {schema, data, index, strings})
 *   renderItemData(wrap, data, strings)  read-only item data (optional: data.text otherwise)
 *
 * Answers use the API's shapes (annotation/task_types/). Span offsets are
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

  const isInt = (value) => typeof value === "number" && Number.isInteger(value);

  const TYPES = {};

  /** Called once by each static/js/task-types/<type>.js. */
  TW.registerTaskType = (name, component) => {
    TYPES[name] = component;
  };

  function componentOf(taskType) {
    const component = TYPES[taskType];
    if (!component) throw new Error(`unknown task type ${taskType}`);
    return component;
  }

  /** The editor state for a suggested or decided answer; what does not fit is dropped. */
  function stateFrom(taskType, schema, data, raw) {
    const component = componentOf(taskType);
    const state = component.empty();
    if (!raw || typeof raw !== "object") return state;
    const allowed = new Set(labelsOf(schema).map((label) => label.value));
    component.fromAnswer(state, raw, { schema: schema || {}, data: data || {}, allowed });
    return state;
  }

  const toApi = (taskType, state) => componentOf(taskType).toApi(state);

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
    const builder = componentOf(taskType).build(ctx, root);
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
    const a = answer && typeof answer === "object" ? answer : {};
    const component = TYPES[taskType];
    if (!component) {
      wrap.append(h("pre", {}, JSON.stringify(a, null, 2)));
      return wrap;
    }
    const ctx = { schema: schema || {}, data: data || {}, index: labelIndex(schema || {}), strings };
    component.renderAnswer(wrap, a, ctx);
    return wrap;
  };

  /** The item's data as the reviewer sees it. */
  TW.renderItemData = (taskType, data, strings) => {
    const d = data || {};
    const wrap = h("div", { class: "item-data" });
    const component = TYPES[taskType];
    if (component && component.renderItemData) component.renderItemData(wrap, d, strings);
    else wrap.append(h("div", { class: "item-text data-text" }, d.text ?? ""));
    return wrap;
  };

  // What the task-type components build with.
  TW.editorKit = {
    PALETTE,
    labelsOf,
    labelIndex,
    titleOf,
    colorOf,
    hotkeyLabel,
    offsetMaps,
    isInt,
    dataBlock,
    labelButton,
    setPressed,
    trackTyping,
    chip,
    stateFrom,
    nextId(prefix) {
      uid += 1;
      return `${prefix}-${uid}`;
    },
  };
  TW.editorInternals = { offsetMaps, stateFrom, toApi, fieldOf };
})();
