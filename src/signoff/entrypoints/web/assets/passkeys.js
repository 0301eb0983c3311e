// Passkeys (WebAuthn): "Add a passkey" on the profile, and Approve/Deny on a stage that
// asks for one. The server gives the options (a single-use challenge it keeps, bound to
// the person and, for a vote, to the request, the decision and the action); the
// browser's answer goes with the form, and the server checks it. Forms are found by
// data-passkey, through one listener on the document, so a form the live updates
// replace keeps working.
(function () {
  "use strict";

  function fromB64url(text) {
    var s = text.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer), s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: fromB64url(c.id) };
      if (c.transports) d.transports = c.transports;
      return d;
    });
  }

  // The credential as the server reads it (WebAuthn's JSON form): what every answer
  // has, and the fields of its kind (an assertion's signature, a new key's attestation).
  function asJSON(cred, response) {
    response.clientDataJSON = toB64url(cred.response.clientDataJSON);
    return JSON.stringify({
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || null,
      clientExtensionResults: {},
      response: response,
    });
  }

  function say(form, text) {
    var out = form.querySelector(".passkey-status");
    if (out) out.textContent = text;
  }

  // POST the form's CSRF token (and extra fields) for the ceremony's options.
  function options(form, extra) {
    var body = new FormData();
    body.append("csrf", form.elements.csrf.value);
    Object.keys(extra).forEach(function (k) { body.append(k, extra[k]); });
    return fetch(form.dataset.options, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (r) {
        return r.json().then(function (answer) {
          if (!r.ok) throw new Error(answer.detail || "refused");
          return answer;
        });
      });
  }

  function failed(form, error) {
    var text = error && error.name === "NotAllowedError"
      ? "The passkey was not used (cancelled, or it timed out)."
      : (error && error.message) || String(error);
    say(form, "Nothing was recorded: " + text);
  }

  function vote(event, form) {
    if (form.elements.passkey.value) return; // the answer is in: send the form
    event.preventDefault();
    var button = event.submitter;
    var decision = button ? button.value : "";
    if (decision === "deny" && !form.elements.comment.value.trim()) {
      say(form, "Say why you deny it: the requester reads it.");
      return;
    }
    if (!window.PublicKeyCredential) {
      say(form, "This browser cannot use passkeys: open this page in one that can.");
      return;
    }
    say(form, "Confirm with your passkey…");
    options(form, { decision: decision })
      .then(function (o) {
        return navigator.credentials.get({
          publicKey: {
            challenge: fromB64url(o.challenge),
            rpId: o.rpId,
            timeout: o.timeout,
            userVerification: o.userVerification,
            allowCredentials: descriptors(o.allowCredentials),
          },
        });
      })
      .then(function (cred) {
        var r = cred.response;
        form.elements.passkey.value = asJSON(cred, {
          authenticatorData: toB64url(r.authenticatorData),
          signature: toB64url(r.signature),
          userHandle: r.userHandle ? toB64url(r.userHandle) : null,
        });
        say(form, "Sending your vote…");
        form.requestSubmit(button);
      })
      .catch(function (error) { failed(form, error); });
  }

  function enroll(event, form) {
    if (form.elements.credential.value) return;
    event.preventDefault();
    if (!form.elements.name.value.trim()) {
      say(form, "Name the passkey first.");
      return;
    }
    if (!window.PublicKeyCredential) {
      say(form, "This browser cannot make passkeys.");
      return;
    }
    say(form, "Follow your browser's prompt…");
    options(form, {})
      .then(function (o) {
        return navigator.credentials.create({
          publicKey: {
            challenge: fromB64url(o.challenge),
            rp: o.rp,
            user: { id: fromB64url(o.user.id), name: o.user.name, displayName: o.user.displayName },
            pubKeyCredParams: o.pubKeyCredParams,
            timeout: o.timeout,
            excludeCredentials: descriptors(o.excludeCredentials),
            authenticatorSelection: o.authenticatorSelection,
            attestation: o.attestation,
          },
        });
      })
      .then(function (cred) {
        var r = cred.response;
        form.elements.credential.value = asJSON(cred, {
          attestationObject: toB64url(r.attestationObject),
          transports: r.getTransports ? r.getTransports() : [],
        });
        form.requestSubmit();
      })
      .catch(function (error) { failed(form, error); });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.dataset.passkey === "vote") vote(event, form);
    else if (form.dataset.passkey === "enroll") enroll(event, form);
  });
})();
