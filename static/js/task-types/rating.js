/* Rating: a score on the project's rubric. Answer {rating}. */
(() => {
  "use strict";

  const TW = window.Tokenworks;
  const { h, kbd } = TW;
  const K = TW.editorKit;

  TW.registerTaskType("rating", {
    empty: () => ({ rating: null }),
    fromAnswer(state, raw, { schema }) {
      const min = K.isInt(schema.min) ? schema.min : 1;
      const max = K.isInt(schema.max) ? schema.max : 5;
      if (K.isInt(raw.rating) && raw.rating >= min && raw.rating <= max) state.rating = raw.rating;
    },
    toApi: (state) => ({ rating: state.rating }),
    build(ctx, root) {
      const min = K.isInt(ctx.schema.min) ? ctx.schema.min : 1;
      const max = K.isInt(ctx.schema.max) ? ctx.schema.max : 5;
      const rubric = ctx.schema.rubric || {};
      // Digits name scores directly; 0 stands for 10 on a scale without a 0.
      const keyFor = (score) => {
        if (score >= 0 && score <= 9) return String(score);
        if (score === 10 && min > 0) return "0";
        return null;
      };
      if (ctx.showData) {
        if (ctx.data.prompt) root.append(K.dataBlock(ctx.strings.prompt, ctx.data.prompt));
        root.append(K.dataBlock(ctx.strings.response, ctx.data.response));
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
          buttons.forEach((b) => K.setPressed(b, Number(b.dataset.value) === state.rating));
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
    },
    renderAnswer(wrap, a, { schema, strings }) {
      const max = schema && K.isInt(schema.max) ? schema.max : 5;
      wrap.append(K.chip(`${K.isInt(a.rating) ? a.rating : "–"} / ${max}`, "rating-chip"));
      const rubric = (schema && schema.rubric) || {};
      if (rubric[String(a.rating)]) wrap.append(h("p", { class: "muted" }, rubric[String(a.rating)]));
    },
    renderItemData(wrap, d, strings) {
      if (d.prompt) wrap.append(K.dataBlock(strings.prompt, d.prompt));
      wrap.append(K.dataBlock(strings.response, d.response));
    },
  });
})();
