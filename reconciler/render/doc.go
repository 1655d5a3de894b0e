// Package render shows a plan.Plan to people (Text, in the style of
// `terraform plan`), to reviewers of a pull request (Markdown, a comment)
// and to programs (JSON, a stable documented schema). It is what `osbgit
// diff` prints.
//
// Neither view ever contains a parameter value that came from a Secret
// (parametersFrom), a credential, or Step.Parameters: changes carry
// plan.SensitiveValue instead, Step.Parameters is never read except to
// scrub, and as a second line of defence every string both views print is
// scrubbed of the secret-derived string values of the plan's steps (values
// of 4 characters or more). Free text that may quote a broker's answer or
// an error (reasons, warnings, errors, diagnostics, the refusal, operation
// keys) is also scrubbed of every value in TextOptions.Redact /
// JSONOptions.Redact — the pass's redact.Set: broker auth, Git
// credentials, parametersFrom values, binding credentials — in raw and
// encoded forms (redact.Forms); parameter changes a person wrote are not.
//
// Every view is byte-identical across runs on the same inputs: an ID the
// plan generated (Step.NewID, a fresh one each run) is shown as "new ID,
// recorded before the first call" (Text, Markdown) or as new_id with an
// empty external_id (JSON); IDs reserved by an earlier pass or given by
// spec.externalID are shown as they are.
//
// # Text
//
// Text prints a header naming the revision, then one block per resource
// that has something to say (an action other than none, an error, a
// warning, or a reason other than "in sync"; TextOptions.ShowUnchanged
// prints every resource):
//
//	marker             meaning
//	+ create           provision / bind
//	~ update           update an instance, re-bind a binding
//	- delete           deprovision / unbind
//	<= poll            poll an operation in flight
//	! orphan-mitigate  DELETE a possibly orphaned create
//	= adopt            record what the broker holds, no call
//	# forget           drop the record, no call
//	x error            blocked (Step.Error)
//	. none             nothing to do (waiting, in sync)
//
// followed by the reason, the ids and target, the changes
// ("~ plan: small -> large", "+ parameters.size: 10",
// "~ parameters.size: (unknown) -> 20" when the old value is not known),
// dependencies, warnings and errors; then the diagnostics, the refusal if
// any, and exactly one closing line: "Plan: N to create, N to update, N to
// delete." — or "No changes. Brokers match the manifests." when the plan has
// no changes, no errors and was not refused. Orphan mitigations count as
// deletes. A second line follows the Plan line when there are polls, adopts,
// forgets or errors ("Also: 1 to poll, 1 to forget." / "2 resources have
// errors.").
//
// # Markdown
//
// Markdown writes a pull-request comment (GitHub, GitLab, Gitea): the
// line MarkdownMarker (an HTML comment CI jobs find their earlier comment
// by), a title naming the revision, then the refusal, blocked resources
// (steps with an error), warnings and diagnostics not already said by a
// blocked resource's error; the text view's closing lines in one
// paragraph; a table of the resources with an action (action, kind,
// namespace/name, broker, class/plan, "old → new" when the plan changes);
// and a collapsible <details> per such resource holding the text view's
// lines about it in a fenced diff block.
//
// The output stays under MarkdownOptions.Limit bytes (default
// DefaultMarkdownLimit, under GitHub's 65,536-character comment limit):
// details are dropped from the end first, then table rows, then top
// entries, and a closing line says how many ("… 3 more resources not
// shown; run `osbgit diff` for the full plan."). One message is cut at
// 1,000 bytes.
//
// Every string that comes from the repository or a broker is inert: in
// the Markdown parts it is an inline code span whose delimiter is longer
// than any backtick run it holds (newlines and control characters become
// spaces; in table cells pipes are escaped), in <summary> it is
// HTML-escaped inside <code>, and in details it is inside a fence longer
// than any backtick run of the block. So no value adds a link, an image,
// HTML, a heading, a mention or a table cell, or closes a block early.
//
// # JSON schema (format_version "1")
//
// JSON writes one object, indented, newline-terminated. Every field listed
// is always present (absent objects are null, absent strings "", lists
// []), so consumers need no existence checks. Fields may be added in a
// later version with the same format_version; a field is never removed or
// changes meaning without a new format_version.
//
//	{
//	  "format_version": "1",
//	  "revision": "<manifest commit, \"\" for a working tree>",
//	  "has_changes": true,           // running the plan would change something (diff exits 1)
//	  "refused": "",                 // non-empty: the plan refuses to run, and why
//	  "summary": {
//	    "create": 0, "update": 0,
//	    "delete": 0,                 // deletes + orphan mitigations (the Plan line's number)
//	    "poll": 0, "adopt": 0, "forget": 0,
//	    "errors": 0,                 // resources with "error" set
//	    "warnings": 0                // resources with at least one warning
//	  },
//	  "resources": [                 // every resource the plan considered, in execution order
//	    {
//	      "ref": {"kind": "ServiceInstance", "namespace": "apps", "name": "db"},
//	                                 // namespace is "" for cluster-scoped kinds
//	      "action": "create",        // none|create|update|delete|poll|orphan-mitigate|adopt|forget
//	      "reason": "new instance",
//	      "external_id": "…",        // instance_id / binding_id ("" when unknown or new_id)
//	      "new_id": false,           // the plan generated external_id: a sync uses a
//	                                 // fresh one, recorded before the first call
//	      "instance_external_id": "",// bindings: the bound instance_id ("" when unknown,
//	                                 // or new: its instance's resource has new_id)
//	      "predecessor_binding_id": "", // binding rotation: the binding replaced
//	      "broker": {"kind": "ClusterServiceBroker", "namespace": "", "name": "demo"}, // or null
//	      "class": "postgres",       // class (service) name at the broker, "" when unknown
//	      "plan": "small",           // plan name (or id when the name is unknown)
//	      "previous_plan": "",       // updates: the plan the broker holds now
//	      "write_ahead": true,       // the record is pushed before the first call
//	      "changes": [
//	        {"path": "parameters.size", "op": "add", "old": "", "new": "10", "sensitive": false}
//	                                 // op: add|remove|modify|set ("set": old value unknown);
//	                                 // sensitive values read "(sensitive)"
//	      ],
//	      "depends_on": [{"kind": …, "namespace": …, "name": …}],
//	      "operation": null,         // poll: {"type", "operation", "plan_id", "start_time", "orphan_mitigation"}
//	      "poll_deadline": "",       // poll: RFC 3339 UTC, "" when none
//	      "secret": null,            // bindings: {"namespace", "name"} receiving (or, on
//	                                 // delete, losing) the credentials
//	      "warnings": [],
//	      "error": "",               // non-empty: the resource is blocked
//	      "source": {"file": "apps/db.yaml", "line": 1} // or null when the manifest is gone
//	    }
//	  ],
//	  "diagnostics": [
//	    {"file": "apps/db.yaml", "line": 7, "field": "spec.parameters.size",
//	     "severity": "error", "message": "…", "ref": {…} or null}
//	  ]
//	}
package render
