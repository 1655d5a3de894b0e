// Package statusview shows osbgit's records to people and programs: what
// `osbgit status` prints, like `svcat get` and `svcat describe`.
//
// Build and Describe are pure functions from what reconciler.ReadRecords
// read (the records, where they came from, and whether they verify) to a
// model: a View (one Row per record) or a Detail (one record). Table and
// Text render them for people, JSON and YAML for programs. Nothing here
// reads Git or calls a broker.
//
// # Trust
//
// Each row's "records" is verified (read from osbgit's records ref, whose
// seal checks with the records key), unverified (no key to check with:
// read from the status branch) or tampered (the seal is wrong, the
// records ref was deleted or moved back, or this record's copy on the
// status branch was changed outside osbgit). Records come from Git, and
// the status branch's copy and unverified records are anyone's, so the
// people's views write every string through Safe: no terminal escape, no
// bidirectional control, no line break from a record reaches the screen.
// JSON keeps every string as the record holds it, with control and
// bidirectional characters as \u escapes; YAML writes control characters
// as escapes but bidirectional controls as they are (yaml.v3 counts them
// printable): pipe it to a program, not to a person's screen.
//
// # Exit status
//
// View.Unhealthy and Detail.Unhealthy decide `osbgit status`'s exit 1: a
// resource failed (its manifest is invalid, its phase is Failed, or its
// Failed condition is True) or tampered. Unverified alone is not.
//
// # JSON and YAML schema (formatVersion "1")
//
// Every field is always present (absent objects null, absent strings "",
// lists []). Fields may be added with the same formatVersion; none is
// removed or changes meaning without a new one. YAML holds the same fields.
//
//	{
//	  "formatVersion": "1",
//	  "statusBranch": "main",
//	  "clusterID": "",               // the deployment's --cluster-id ("" for none)
//	  "recordsRef": "refs/osbgit/records/main", // or refs/osbgit/clusters/<id>/records/main
//	  "revision": "<commit the records were read from>",
//	  "records": "verified",         // verified|unverified|tampered, the records as a whole
//	  "reason": "",                  // why unverified or tampered
//	  "summary": {"resources": 2, "failed": 0, "tampered": 0, "unverified": 0},
//	  "resources": [
//	    {
//	      "ref": {"kind": "ServiceInstance", "namespace": "apps", "name": "db"},
//	      "broker": {"kind": "ClusterServiceBroker", "name": "demo"}, // or null
//	      "class": "postgres", "plan": "small",
//	      "phase": "Ready",          // "" for a broker's record
//	      "lastOperation": "provision succeeded",
//	      "since": "2024-05-01T10:00:00Z", // Ready/Failed condition or last operation, latest
//	      "message": "…",
//	      "failed": false,
//	      "records": "verified",     // this row's trust
//	      "tampered": ""             // what was changed outside osbgit
//	    }
//	  ],
//	  "problems": [],                // files changed outside osbgit that are no resource's record
//	  "errors": []                   // record files that could not be read
//	}
//
// Describe's Detail has formatVersion, statusBranch, clusterID, recordsRef,
// revision, records and
// reason as above, then "resource" (a row), "record" (the status record in
// its own format, see manifest.StatusRecord; null when only the status
// branch has the file) and "history" (a git command listing the record's
// past versions, since a record keeps only its last operation).
package statusview
