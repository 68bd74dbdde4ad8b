// Enhancements for the Billing page; every form also works without this file.
"use strict";

(function () {
  const dialog = document.getElementById("redeem-dialog");
  const opener = document.getElementById("redeem-open");
  const form = document.getElementById("redeem-form");
  if (!dialog || !opener || !form || typeof dialog.showModal !== "function") {
    return;
  }
  const field = document.getElementById("promo-code");
  const error = document.getElementById("redeem-error");
  const cancel = document.getElementById("redeem-cancel");
  const status = () => document.getElementById("live-status");

  function open(event) {
    if (event) event.preventDefault();
    if (dialog.open) dialog.close();
    error.textContent = "";
    dialog.showModal(); // modal: the rest of the page is inert, Escape closes it
    field.focus();
  }

  function close() {
    dialog.close();
    opener.focus();
  }

  async function refresh(message) {
    // Fetch the page again and swap its content: the new credit shows without a reload.
    const url = new URL(window.location.href);
    url.searchParams.delete("redeem");
    url.searchParams.delete("flash");
    const answer = await fetch(url, { credentials: "same-origin" });
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.getElementById("content");
    if (fresh) document.getElementById("content").replaceWith(fresh);
    window.history.replaceState(null, "", url);
    const note = document.createElement("p");
    note.className = "notice success";
    note.textContent = message;
    status().replaceChildren(note);
    bindBuyForm();
  }

  async function submit(event) {
    event.preventDefault();
    error.textContent = "";
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const answer = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      const body = await answer.json();
      if (body.ok) {
        field.value = "";
        close();
        await refresh(body.message);
      } else {
        error.textContent = body.message;
        field.focus();
      }
    } catch (failure) {
      error.textContent = "Could not reach the server. Check your connection and try again.";
    } finally {
      button.disabled = false;
    }
  }

  function trapFocus(event) {
    // Tab and Shift+Tab go round the dialog's own controls, never out of it.
    if (event.key !== "Tab") return;
    const controls = Array.from(
      dialog.querySelectorAll("input:not([type=hidden]), button, a[href]"),
    ).filter((el) => !el.disabled);
    if (controls.length === 0) return;
    const first = controls[0];
    const last = controls[controls.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }

  function bindBuyForm() {
    const custom = document.getElementById("custom-amount");
    const radio = document.getElementById("amount-custom");
    if (custom && radio) {
      custom.addEventListener("input", () => { radio.checked = true; });
    }
  }

  if (dialog.open) {
    dialog.close();
    dialog.showModal();
    field.focus();
  }
  opener.addEventListener("click", open);
  cancel.addEventListener("click", (event) => { event.preventDefault(); close(); });
  form.addEventListener("submit", submit);
  dialog.addEventListener("keydown", trapFocus);
  dialog.addEventListener("close", () => opener.focus());
  bindBuyForm();
})();
