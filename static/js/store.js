// The store tablet: idle reset, thank-you auto-advance, sending without losing the form.
(function () {
  "use strict";
  var idleTimer = null;

  function captureForm() {
    return document.querySelector("form[data-capture]");
  }

  // An idle customer screen goes back to a blank one (?auto=1: not staff activity).
  function armIdle() {
    var form = captureForm();
    if (!form) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(function () {
      location.replace(form.dataset.blank);
    }, Number(form.dataset.idle || 120) * 1000);
  }

  ["input", "change", "keydown", "pointerdown"].forEach(function (type) {
    document.addEventListener(type, armIdle, true);
  });

  // A page restored from the back/forward cache must not show a previous customer.
  window.addEventListener("pageshow", function (event) {
    var form = captureForm();
    if (form && event.persisted) {
      form.reset();
      location.replace(form.dataset.blank);
    }
  });

  // "Start again": what was typed disappears at once, then a blank screen is loaded.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-start-again]");
    var form = captureForm();
    if (!link || !form) return;
    event.preventDefault();
    form.reset();
    form.querySelectorAll("input[type=email], input[type=tel], input[type=text]").forEach(
      function (input) { input.value = ""; }
    );
    location.replace(link.href);
  });

  function setDisabled(form, disabled) {
    form.querySelectorAll("button").forEach(function (b) { b.disabled = disabled; });
  }

  // Send with fetch: when the network is gone the page stays, with what was typed, and says so.
  // A retry carries the same idempotency key, so the server never records the capture twice.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-capture], form[data-phone]") || !window.fetch) return;
    event.preventDefault();
    var body = new FormData(form, event.submitter || undefined);
    var status = document.getElementById("capture-status");
    setDisabled(form, true);
    fetch(form.action, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) {
        return response.text().then(function (html) {
          // The page the server answered with, shown as is: a redirect's page (the thank-you
          // screen, the phone's read-back) is shown once, never fetched a second time.
          var doc = new DOMParser().parseFromString(html, "text/html");
          if (response.redirected) history.replaceState(null, "", response.url);
          document.title = doc.title;
          document.documentElement.lang = doc.documentElement.lang;
          document.body.replaceWith(doc.body);
          var focus = document.getElementById("error-summary") || document.getElementById("main");
          if (focus) focus.focus();
          start();
        });
      })
      .catch(function () {
        setDisabled(form, false);
        if (status) {
          status.textContent = form.dataset.offline;
          status.focus();
        }
        armIdle();
      });
  });

  var advanceTimer = null;

  function start() {
    armIdle();
    clearTimeout(advanceTimer);
    var thanks = document.querySelector(".thanks[data-advance]");
    if (thanks) {
      advanceTimer = setTimeout(function () {
        location.replace(thanks.dataset.next);
      }, Number(thanks.dataset.advance) * 1000);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
