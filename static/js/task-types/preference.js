/* Preference: response A, response B or a tie, with a rationale the project may ask for.
 * Answer {choice, rationale?}. */
(() => {
  "use strict";

  const TW = window.Tokenworks;
  const { h, kbd } = TW;
  const K = TW.editorKit;

  TW.registerTaskType("preference", {
    empty: () => ({ choice: null, rationale: "" }),
    fromAnswer(state, raw, { schema }) {
      const choices = schema.allow_tie === false ? ["a", "b"] : ["a", "b", "tie"];
      if (choices.includes(raw.choice)) state.choice = raw.choice;
      if (typeof raw.rationale === "string") state.rationale = raw.rationale;
    },
    toApi(state) {
      const answer = { choice: state.choice };
      if (state.rationale && state.rationale.trim()) answer.rationale = state.rationale;
      return answer;
    },
    build(ctx, root) {
      const allowTie = ctx.schema.allow_tie !== false;
      const rationale = ctx.schema.rationale || "optional";
      const options = [
        { value: "a", key: "1", title: ctx.strings.responseA, text: ctx.data.response_a },
        { value: "b", key: "2", title: ctx.strings.responseB, text: ctx.data.response_b },
      ];
      const choose = (value) => ctx.set({ ...ctx.get(), choice: value });
      if (ctx.showData) root.append(K.dataBlock(ctx.strings.prompt, ctx.data.prompt));
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
        const id = K.nextId("answer-rationale");
        area = h("textarea", { id, class: "answer-text short", rows: "3", dataset: { field: "rationale" } });
        if (rationale === "required") area.setAttribute("aria-required", "true");
        K.trackTyping(ctx, area, (state, value) => ({ ...state, rationale: value }));
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
          pickers.forEach((b) => K.setPressed(b, b.dataset.value === state.choice));
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
    },
    renderAnswer(wrap, a, { strings }) {
      const names = { a: strings.responseA, b: strings.responseB, tie: strings.tie };
      wrap.append(K.chip(names[a.choice] || "–", `choice-${a.choice}`));
      if (a.rationale) wrap.append(h("div", { class: "data-text rationale" }, a.rationale));
    },
    renderItemData(wrap, d, strings) {
      wrap.append(
        K.dataBlock(strings.prompt, d.prompt),
        h(
          "div",
          { class: "pref-grid" },
          K.dataBlock(strings.responseA, d.response_a, "pref-card"),
          K.dataBlock(strings.responseB, d.response_b, "pref-card"),
        ),
      );
    },
  });
})();
