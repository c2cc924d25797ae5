/* Multi-label classification: any number of labels, kept in the schema's order. Answer {labels}. */
(() => {
  "use strict";

  const TW = window.Tokenworks;
  const { h } = TW;
  const K = TW.editorKit;

  TW.registerTaskType("multi_label", {
    empty: () => ({ labels: [] }),
    fromAnswer(state, raw, { schema }) {
      const chosen = Array.isArray(raw.labels) ? raw.labels : [];
      state.labels = K.labelsOf(schema)
        .map((label) => label.value)
        .filter((value) => chosen.includes(value));
    },
    toApi: (state) => ({ labels: [...state.labels] }),
    build(ctx, root) {
      const labels = K.labelsOf(ctx.schema);
      const order = labels.map((label) => label.value);
      const toggle = (value) => {
        const current = new Set(ctx.get().labels);
        if (current.has(value)) current.delete(value);
        else current.add(value);
        ctx.set({ labels: order.filter((v) => current.has(v)) });
      };
      if (ctx.showData) root.append(h("div", { class: "item-text data-text" }, ctx.data.text ?? ""));
      const buttons = labels.map((label, i) => K.labelButton(label, i, () => toggle(label.value)));
      buttons.forEach((b) => b.classList.add("toggle"));
      root.append(
        h("div", { class: "label-grid", role: "group", "aria-label": ctx.strings.labels }, buttons),
        ctx.slot("labels"),
      );
      return {
        render(state) {
          buttons.forEach((b) => K.setPressed(b, state.labels.includes(b.dataset.value)));
        },
        handleKey(event) {
          const label = K.hotkeyLabel(labels, event);
          if (!label) return false;
          toggle(label.value);
          return true;
        },
      };
    },
    renderAnswer(wrap, a, { index, strings }) {
      const labels = Array.isArray(a.labels) ? a.labels : [];
      if (!labels.length) wrap.append(h("span", { class: "muted" }, strings.none));
      labels.forEach((value) => wrap.append(K.chip(K.titleOf(index, value), K.colorOf(index, value))));
    },
  });
})();
