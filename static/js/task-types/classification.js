/* Classification: one label per item. Answer {label}. */
(() => {
  "use strict";

  const TW = window.Tokenworks;
  const { h } = TW;
  const K = TW.editorKit;

  TW.registerTaskType("classification", {
    empty: () => ({ label: null }),
    fromAnswer(state, raw, { allowed }) {
      if (allowed.has(raw.label)) state.label = raw.label;
    },
    toApi: (state) => ({ label: state.label }),
    build(ctx, root) {
      const labels = K.labelsOf(ctx.schema);
      if (ctx.showData) root.append(h("div", { class: "item-text data-text" }, ctx.data.text ?? ""));
      const buttons = labels.map((label, i) =>
        K.labelButton(label, i, () => ctx.set({ label: label.value })),
      );
      root.append(
        h("div", { class: "label-grid", role: "group", "aria-label": ctx.strings.labels }, buttons),
        ctx.slot("label"),
      );
      return {
        render(state) {
          buttons.forEach((b) => K.setPressed(b, b.dataset.value === state.label));
        },
        handleKey(event) {
          const label = K.hotkeyLabel(labels, event);
          if (!label) return false;
          ctx.set({ label: label.value });
          return true;
        },
        check: (state) => (state.label ? null : ["label", ctx.strings.chooseLabel]),
      };
    },
    renderAnswer(wrap, a, { index }) {
      wrap.append(K.chip(K.titleOf(index, a.label), K.colorOf(index, a.label)));
    },
  });
})();
