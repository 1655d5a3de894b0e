// Package gitrepo is osbgit's Git adapter: it reads manifests from a branch
// and writes status records under .osbgit/ back, with go-git. It knows
// nothing about OSB or manifest types: it deals in revisions, trees, blobs
// and change sets.
//
// # Sources
//
// Open accepts a local working copy's root, a local bare repository, or a
// URL (file://, http://, https://, ssh://, scp-like user@host:path).
//
//   - URLs are fetched into a bare clone in the WithCacheDir directory (one
//     subdirectory per redacted URL, reused across runs and locked against
//     concurrent processes), or into memory without a cache dir. Fetches
//     bring only the manifest and status branches, at depth 1 by default.
//   - Local paths are used in place: nothing is cloned, RemoteHead reads the
//     branch ref, reads see the repository's objects directly. Writes store
//     objects in the repository and move the branch through git-receive-pack
//     (the file transport, which needs the git binary), so git's own ref
//     locking and hooks apply. For a working copy, the index and the files
//     on disk are never touched; writing to the checked-out branch is
//     refused with ErrCheckedOutBranch (it would leave the index behind
//     HEAD; git refuses such a push too): configure a separate status
//     branch. WorkTreeFS exposes a working copy's files, uncommitted edits
//     included, for `osbgit diff`.
//
// # A pass
//
// RemoteHead is one ls-remote: when it equals the last observed commit the
// pass can stop there. Otherwise Fetch, then read with TreeFS or with Files
// and ReadBlob (blob hashes let callers cache decoded documents), use
// ChangedFiles for incremental reloads and ChangedOutside / TouchesOnlyStatus
// to ignore commits that only touch .osbgit/. WriteIntent pushes write-ahead
// records with no retry (a moved branch is a *ConflictError: re-plan);
// WriteStatus pushes status with fetch-reapply-retry. Both return the pushed
// commit, to be recorded as observed.
//
// # Pushing
//
// A write builds one commit whose tree is the base tree with the change set
// applied (unchanged subtrees are shared by hash), and pushes exactly the new
// objects with a compare-and-swap ref update (old head → new commit). It
// never force-pushes. Because the base history is never walked, pushing from
// a shallow clone works after the remote moved; the re-applied commit is
// built on the freshly fetched head.
//
// Fetches and pushes go through go-git's transport. Where go-git's
// Remote.FetchContext and Remote.PushContext fall short (an incremental
// fetch into a shallow clone, a push whose cost must not grow with the
// history), this package drives go-git's upload-pack and receive-pack
// sessions itself; fetchLocked and push name the tests that fail with the
// library.
//
// # Credentials
//
// See Auth for how credentials are sent. Credentials in an http(s) URL are
// moved out of it before go-git sees it; URLs are shown only through
// RedactURL, and every error message is scrubbed of the configured
// password, token and passphrase. Credentials never go over plain http://
// to a non-loopback host without WithInsecureHTTP; SSH requires a
// known_hosts file unless WithInsecureSkipHostKeyCheck.
package gitrepo
