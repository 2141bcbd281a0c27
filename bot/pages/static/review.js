// The review workspace's little JavaScript: keyboard shortcuts, the '?' help, confirmations, the answer
// editor following the chosen intent, and earlier conversation turns loaded on request. No inline script
// anywhere (the pages' Content-Security-Policy forbids it); every text is set with textContent.
(function () {
  "use strict";
  const csrf = document.body.dataset.csrf || "";
  const help = document.getElementById("help");
  const rows = Array.from(document.querySelectorAll("tr.row"));
  let selected = -1;

  function select(i) {
    if (!rows.length) return;
    selected = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach((r, j) => r.classList.toggle("selected", j === selected));
    rows[selected].scrollIntoView({ block: "nearest" });
  }

  function typing(e) {
    const t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }

  document.querySelectorAll("[data-help]").forEach((b) => b.addEventListener("click", () => help.showModal()));

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
    const key = e.key;
    if (key === "?") { e.preventDefault(); help.open ? help.close() : help.showModal(); return; }
    if (rows.length && (key === "j" || key === "k")) { e.preventDefault(); select(selected + (key === "j" ? 1 : -1)); return; }
    if (rows.length && key === "Enter" && selected >= 0) { window.location.href = rows[selected].dataset.href; return; }
    if (key === "/") {
      const s = document.querySelector("[data-search]");
      if (s) { e.preventDefault(); s.focus(); }
      return;
    }
    const button = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (button && !button.disabled) { e.preventDefault(); button.click(); return; }
    const field = document.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (field) { e.preventDefault(); field.focus(); }
  });

  document.querySelectorAll("tr.row").forEach((row) => row.addEventListener("dblclick", () => {
    window.location.href = row.dataset.href;
  }));

  document.querySelectorAll("[data-confirm]").forEach((b) => b.addEventListener("click", (e) => {
    if (!window.confirm(b.dataset.confirm)) e.preventDefault();
  }));

  // The answer textarea shows the chosen intent's current answer.
  const answers = document.querySelector("select[data-answers]");
  const answerText = document.getElementById("answer-text");
  if (answers && answerText) {
    answers.addEventListener("change", () => {
      const option = answers.selectedOptions[0];
      answerText.value = option ? option.dataset.answer || "" : "";
    });
  }

  // Earlier turns of a long conversation, loaded when asked for.
  document.querySelectorAll("[data-earlier]").forEach((button) => button.addEventListener("click", async () => {
    const list = document.querySelector("ol.conversation");
    const first = list.querySelector("li[data-turn]") ;
    const before = button.dataset.earlier;
    const turn = location.pathname.split("/").pop();
    const response = await fetch(`/api/review/turns/${encodeURIComponent(before)}/context?before=${encodeURIComponent(before)}`,
      { headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" });
    if (!response.ok) { button.textContent = "could not load earlier turns"; return; }
    const data = await response.json();
    const fragment = document.createDocumentFragment();
    for (const t of data.turns) {
      const li = document.createElement("li");
      const user = document.createElement("div"); user.className = "user"; user.textContent = t.message;
      const bot = document.createElement("div"); bot.className = "bot"; bot.textContent = t.answer;
      li.append(user, bot);
      fragment.append(li);
    }
    list.prepend(fragment);
    if (data.more_before && data.turns.length) button.dataset.earlier = String(data.turns[0].turn_id);
    else button.remove();
    void first; void turn;
  }));
})();
