// Poll the phone link's state; the server finishes the visit when the page is loaded again.
(function () {
  var state = document.getElementById("phone-state");
  var url = state.dataset.statusUrl;
  function poll() {
    fetch(url, {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (body) {
        if (body.state === "verified" || body.state === "expired" || body.state === "used" || body.state === "none") {
          window.location.reload();
        } else {
          if (body.state === "opened") {
            state.textContent = "Opened on a phone: waiting for the sign-in…";
          }
          setTimeout(poll, 1000);
        }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  poll();
})();
