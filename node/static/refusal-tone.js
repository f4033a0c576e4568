// A short falling tone when the desk shows a refusal, as circulation desks expect from a scanner.
// A file, not an inline script (the Content-Security-Policy allows none); loaded only when
// [desk] sound = yes.  Browsers play sound only after the desk was used (a scan, a key, a click):
// a desk PC on a kiosk profile can pass --autoplay-policy=no-user-gesture-required.
(function () {
  if (!document.querySelector(".banner.error")) {
    return;
  }
  var root = document.documentElement;
  var Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) {
    root.dataset.refusalTone = "unsupported";
    return;
  }
  var context = new Context();
  var oscillator = context.createOscillator();
  var gain = context.createGain();
  oscillator.type = "square";
  oscillator.frequency.setValueAtTime(880, context.currentTime);
  oscillator.frequency.setValueAtTime(440, context.currentTime + 0.12);
  gain.gain.setValueAtTime(0.08, context.currentTime);
  gain.gain.setValueAtTime(0, context.currentTime + 0.3);
  oscillator.connect(gain).connect(context.destination);
  oscillator.start();
  oscillator.stop(context.currentTime + 0.3);
  root.dataset.refusalTone = context.state === "running" ? "played" : "waiting";
  context.resume().then(function () { root.dataset.refusalTone = "played"; });
})();
