/* The project form: a label-schema editor with a live preview of what annotators
   see, a Markdown preview of the instructions (rendered and cleaned by the server,
   the same way the workspace shows them), the quality fields that apply to the
   chosen decision rule, and the tier's list price as the default price.

   The JSON textarea stays the form's value: the editor rewrites it, so the page
   still works (as plain JSON) without this script. */
(function () {
  "use strict";
  var form = document.getElementById("project-form");
  if (!form) { return; }
  var config = JSON.parse(document.getElementById("schema-editor-config").textContent);
  var listPrices = JSON.parse(document.getElementById("tier-list-prices").textContent);
  var S = config.strings;
  var taskType = form.querySelector("[name=task_type]");
  var schemaBox = form.querySelector("[name=label_schema]");
  var editor = document.getElementById("schema-editor");
  var rows = document.getElementById("schema-rows");
  var preview = document.getElementById("schema-preview");

  function format(text, values) {
    return text.replace(/%\((\w+)\)s/g, function (_, key) { return values[key]; });
  }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function parsed() {
    try {
      var value = JSON.parse(schemaBox.value || "{}");
      return value && typeof value === "object" && !Array.isArray(value) ? value : null;
    } catch (error) {
      return null;
    }
  }
  function labelled() { return config.labelled.indexOf(taskType.value) !== -1; }

  // --- preview ---------------------------------------------------------------------
  function renderPreview() {
    var schema = parsed();
    preview.replaceChildren();
    if (!schema) {
      preview.appendChild(el("p", { "class": "error", id: "schema-invalid" }, S.invalidJson));
      return;
    }
    if (labelled()) {
      var labels = Array.isArray(schema.labels) ? schema.labels : [];
      if (!labels.length) { preview.appendChild(el("p", { "class": "muted" }, S.noLabels)); }
      labels.forEach(function (label) {
        var chip = el("span", { "class": "label-chip", "data-preview-label": String(label.value || "") });
        if (label.hotkey) { chip.appendChild(el("kbd", {}, String(label.hotkey))); }
        chip.appendChild(document.createTextNode(" " + String(label.title || label.value || "")));
        preview.appendChild(chip);
      });
    } else if (taskType.value === "preference") {
      [S.responseA, S.responseB].concat(schema.allow_tie === false ? [] : [S.tie]).forEach(function (t) {
        preview.appendChild(el("span", { "class": "label-chip" }, t));
      });
    } else if (taskType.value === "rating") {
      preview.appendChild(el("p", {}, format(S.score, { min: schema.min || 1, max: schema.max || 5 })));
    } else {
      preview.appendChild(el("p", {}, format(S.textBox, {
        min: schema.min_length || 1, max: schema.max_length || 20000
      })));
    }
  }

  // --- the label rows ----------------------------------------------------------------
  function rowsToSchema() {
    var schema = parsed() || {};
    schema.labels = Array.prototype.map.call(rows.querySelectorAll(".schema-row"), function (row) {
      var label = {
        value: row.querySelector("[data-key=value]").value.trim(),
        title: row.querySelector("[data-key=title]").value.trim()
      };
      var hotkey = row.querySelector("[data-key=hotkey]").value.trim();
      if (hotkey) { label.hotkey = hotkey; }
      if (!label.title) { delete label.title; }
      return label;
    });
    schemaBox.value = JSON.stringify(schema, null, 2);
    renderPreview();
  }
  function addRow(label) {
    var row = el("div", { "class": "schema-row" });
    [["value", S.value, 24], ["title", S.title, 40], ["hotkey", S.hotkey, 3]].forEach(function (spec) {
      var input = el("input", {
        type: "text", "data-key": spec[0], "aria-label": spec[1], placeholder: spec[1], size: String(spec[2])
      });
      input.value = label && label[spec[0]] !== undefined ? String(label[spec[0]]) : "";
      input.addEventListener("input", rowsToSchema);
      row.appendChild(input);
    });
    var remove = el("button", { type: "button", "class": "secondary" }, S.remove);
    remove.addEventListener("click", function () { row.remove(); rowsToSchema(); });
    row.appendChild(remove);
    rows.appendChild(row);
  }
  function schemaToRows() {
    rows.replaceChildren();
    var schema = parsed();
    editor.hidden = !labelled() || !schema;
    if (editor.hidden) { return; }
    (Array.isArray(schema.labels) ? schema.labels : []).forEach(addRow);
  }
  document.getElementById("schema-add").addEventListener("click", function () {
    addRow({});
    rowsToSchema();
    var inputs = rows.querySelectorAll("[data-key=value]");
    inputs[inputs.length - 1].focus();
  });
  schemaBox.addEventListener("input", function () { schemaToRows(); renderPreview(); });
  taskType.addEventListener("change", function () {
    // A new type starts from its example schema: another type's labels mean nothing to it.
    schemaBox.value = JSON.stringify(config.examples[taskType.value] || {}, null, 2);
    schemaToRows();
    renderPreview();
  });

  // --- instructions ---------------------------------------------------------------------
  var instructions = form.querySelector("[name=instructions]");
  var instructionsPreview = document.getElementById("instructions-preview");
  var csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  var pending = null;
  function renderInstructions() {
    var body = new URLSearchParams({ text: instructions.value });
    fetch(config.markdownPreview, {
      method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrf }
    })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        // Rendered by the server with raw HTML off and cleaned by an allow-list (nh3).
        instructionsPreview.innerHTML = html;
      })
      .catch(function () {
        instructionsPreview.replaceChildren(el("p", { "class": "error" }, S.previewFailed));
      });
  }
  instructions.addEventListener("input", function () {
    window.clearTimeout(pending);
    pending = window.setTimeout(renderInstructions, 300);
  });

  // --- quality fields and price ----------------------------------------------------------
  function showDecision() {
    var chosen = form.querySelector("[name=decision]:checked");
    form.querySelectorAll("[data-decision]").forEach(function (box) {
      box.hidden = !!chosen && box.getAttribute("data-decision") !== chosen.value;
    });
  }
  form.querySelectorAll("[name=decision]").forEach(function (radio) {
    radio.addEventListener("change", showDecision);
  });
  var tier = form.querySelector("[name=required_tier]");
  var price = form.querySelector("[name=price_per_1k_tokens]");
  var hint = document.getElementById("list-price-hint");
  function showListPrice() {
    var listPrice = listPrices[tier.value];
    if (listPrice !== undefined) {
      price.placeholder = listPrice;
      hint.textContent = format(S.listPrice, { tier: tier.value, price: listPrice });
    }
  }
  tier.addEventListener("change", showListPrice);

  schemaToRows();
  renderPreview();
  showDecision();
  showListPrice();
  if (instructions.value) { renderInstructions(); }
})();
