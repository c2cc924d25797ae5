/* Spans: labelled stretches of the item's text. Answer {spans: [{start, end, label}]},
 * offsets in Unicode code points (see answer-editor.js). */
(() => {
  "use strict";

  const TW = window.Tokenworks;
  const { h } = TW;
  const K = TW.editorKit;

  const sortSpans = (spans) =>
    [...spans].sort(
      (x, y) => x.start - y.start || x.end - y.end || String(x.label).localeCompare(String(y.label)),
    );

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
        seg.classList.add("marked", K.colorOf(index, inner.label));
        if (covering.length > 1) seg.classList.add("nested");
        if (covering.some((s) => s.js0 === from)) seg.classList.add("span-start");
        const ending = covering.filter((s) => s.js1 === to);
        if (ending.length) {
          seg.classList.add("span-end");
          seg.dataset.tag = ending.map((s) => K.titleOf(index, s.label)).join(" · ");
        }
        const names = covering.map((s) => K.titleOf(index, s.label)).join(", ");
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
        h("span", { class: "span-chip-label" }, K.titleOf(index, span.label)),
        h("span", { class: "span-chip-offsets" }, `${span.start}–${span.end}`),
      ];
      if (!onRemove) return h("li", { class: `span-chip ${K.colorOf(index, span.label)}` }, inner);
      return h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: `span-chip ${K.colorOf(index, span.label)}`,
            title: strings.clickToRemove,
            onclick: () => onRemove(span),
          },
          inner,
          h("span", { class: "span-chip-x", "aria-hidden": "true" }, "×"),
        ),
      );
    });
  }

  TW.registerTaskType("spans", {
    empty: () => ({ spans: [] }),
    fromAnswer(state, raw, { data, allowed }) {
      const length = K.offsetMaps(String((data && data.text) || "")).length;
      const spans = (Array.isArray(raw.spans) ? raw.spans : []).filter(
        (s) =>
          s && K.isInt(s.start) && K.isInt(s.end) && s.start >= 0 && s.end > s.start &&
          s.end <= length && allowed.has(s.label),
      );
      state.spans = sortSpans(spans.map((s) => ({ start: s.start, end: s.end, label: s.label })));
    },
    toApi: (state) => ({ spans: state.spans.map(({ start, end, label }) => ({ start, end, label })) }),
    build(ctx, root) {
      const labels = K.labelsOf(ctx.schema);
      const index = K.labelIndex(ctx.schema);
      const text = String(ctx.data.text ?? "");
      const maps = K.offsetMaps(text);
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
        K.labelButton(label, i, () => addSpan(label.value), { keepSelection: true }),
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
          const label = K.hotkeyLabel(labels, event);
          if (!label) return false;
          addSpan(label.value);
          return true;
        },
      };
    },
    renderAnswer(wrap, a, { schema, data, index, strings }) {
      const text = String((data && data.text) || "");
      const maps = K.offsetMaps(text);
      const spans = K.stateFrom("spans", schema, data, a).spans;
      const box = h("div", { class: "data-text span-text compact" });
      renderSpanText(box, text, maps, spans, index, strings, false);
      wrap.append(box, h("ul", { class: "span-list" }, spanChips(text, maps, spans, index, strings)));
    },
  });
})();
