/* Text: a written response to a prompt. Answer {text}. */
(() => {
  "use strict";

  const TW = window.Tokenworks;
  const { h } = TW;
  const K = TW.editorKit;

  TW.registerTaskType("text", {
    empty: () => ({ text: "" }),
    fromAnswer(state, raw) {
      if (typeof raw.text === "string") state.text = raw.text;
    },
    toApi: (state) => ({ text: state.text }),
    build(ctx, root) {
      const { min_length: min, max_length: max } = ctx.schema;
      if (ctx.showData) {
        if (ctx.data.system) root.append(K.dataBlock(ctx.strings.system, ctx.data.system, "data-system"));
        root.append(K.dataBlock(ctx.strings.prompt, ctx.data.prompt));
      }
      const id = K.nextId("answer-text");
      const area = h("textarea", { id, class: "answer-text", rows: "9", dataset: { field: "text" } });
      const counter = h("span", { class: "char-count" });
      const count = () => {
        const n = [...area.value].length;
        counter.textContent = K.isInt(min) && K.isInt(max)
          ? TW.format(ctx.strings.charactersRange, { count: n, min, max })
          : TW.format(ctx.strings.characters, { count: n });
        counter.classList.toggle("out-of-range", K.isInt(min) && K.isInt(max) && (n < min || n > max));
      };
      area.addEventListener("input", count);
      K.trackTyping(ctx, area, (state, value) => ({ ...state, text: value }));
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
    },
    renderAnswer(wrap, a) {
      wrap.append(h("div", { class: "data-text" }, String(a.text ?? "")));
    },
    renderItemData(wrap, d, strings) {
      if (d.system) wrap.append(K.dataBlock(strings.system, d.system, "data-system"));
      wrap.append(K.dataBlock(strings.prompt, d.prompt));
    },
  });
})();
