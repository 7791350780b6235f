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
        if (response.redirected) {
          location.replace(response.url);
          return null;
        }
        return response.text().then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          document.title = doc.title;
          document.documentElement.lang = doc.documentElement.lang;
          document.body.replaceWith(doc.body);
          var focus = document.getElementById("error-summary") || document.getElementById("main");
          if (focus) focus.focus();
          armIdle();
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

  document.addEventListener("DOMContentLoaded", function () {
    armIdle();
    var thanks = document.querySelector(".thanks[data-advance]");
    if (thanks) {
      setTimeout(function () {
        location.replace(thanks.dataset.next);
      }, Number(thanks.dataset.advance) * 1000);
    }
  });
})();
