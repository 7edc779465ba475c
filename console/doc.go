// Package console holds the kowai console: a browser UI for people who would
// rather look than read JSON. Every kowai node serves it at /console.
//
// The console is static files (one HTML page, standard ES modules and a
// hand-written style sheet) embedded in the binary, so it needs no Node.js
// to build or run and nothing from another origin at run time. It talks to
// kowai only through the public API (/api/v1) with the signed-in user's
// tokens, as any other client does, so it never sees more than that user
// may. The page loads no inline script or style: the gateway serves it under
// a strict Content-Security-Policy (same-origin scripts, styles and requests
// only).
//
// What it offers: sign in and sign out (token refresh in the background,
// the user's sessions with "sign out other sessions"), chat with streamed
// replies, feedback and safely rendered Markdown, agents with forms generated
// from each agent type's config schema, workflows with forms generated from
// their parameter schemas and a live timeline of a run's tasks, the cluster
// page for moderators and admins, and user administration with the audit log
// for admins.
//
// Model text is never parsed as HTML: the Markdown renderer builds DOM nodes
// and sets text with textContent.
package console
