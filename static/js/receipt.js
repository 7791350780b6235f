// The printable consent receipt: its "Print" button opens the browser's print dialog.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var button = document.getElementById("print-receipt");
  if (button) {
    button.addEventListener("click", function () {
      window.print();
    });
  }
});
