// The preference page without a full reload: each form is posted as the browser would post it,
// the answer (the same page, with what was saved) replaces the page's <main>, and the focus
// goes where a reload would put it (the "Saved" statement or the error summary).
// Without JavaScript, or when anything here fails, the forms post and reload as usual.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !window.fetch || !window.DOMParser || !window.FormData) {
    return;
  }
  // These leave the page or change all of it: the browser handles them.
  var NAVIGATES = { download_data: true, sign_out: true, language: true };

  function formData(form, submitter) {
    try {
      return new FormData(form, submitter || undefined);
    } catch (e) {
      var data = new FormData(form);
      if (submitter && submitter.name) {
        data.append(submitter.name, submitter.value);
      }
      return data;
    }
  }

  function show(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var next = fresh.getElementById("main");
    if (!next) {
      return false;
    }
    main.innerHTML = next.innerHTML;
    document.title = fresh.title;
    var target = main.querySelector("[autofocus]") || main.querySelector("h1");
    if (target) {
      if (!target.hasAttribute("tabindex")) {
        target.setAttribute("tabindex", "-1");
      }
      target.focus();
    }
    return true;
  }

  main.addEventListener("submit", function (event) {
    var form = event.target;
    // getAttribute: the forms have an input named "action", which hides form.action.
    var method = (form.getAttribute("method") || "get").toLowerCase();
    if (!(form instanceof HTMLFormElement) || method !== "post") {
      return;
    }
    var action = form.querySelector('input[name="action"]');
    if (!action || NAVIGATES[action.value]) {
      return;
    }
    event.preventDefault();
    var submitter = event.submitter;
    var body = formData(form, submitter);
    main.setAttribute("aria-busy", "true");
    form.querySelectorAll("button").forEach(function (button) {
      button.disabled = true;
    });
    var url = new URL(form.getAttribute("action") || location.href, location.href).href;
    fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      redirect: "follow",
    })
      .then(function (response) {
        var path = new URL(response.url, location.href).pathname;
        return response.text().then(function (html) {
          if (path !== location.pathname || !show(html)) {
            location.assign(response.url);
          }
        });
      })
      .catch(function () {
        // The network failed: post the form the ordinary way, which says so in the browser.
        form.querySelectorAll("button").forEach(function (button) {
          button.disabled = false;
        });
        if (submitter && submitter.name) {
          var hidden = document.createElement("input");
          hidden.type = "hidden";
          hidden.name = submitter.name;
          hidden.value = submitter.value;
          form.appendChild(hidden);
        }
        form.submit();
      })
      .finally(function () {
        main.removeAttribute("aria-busy");
      });
  });
})();
