package gitrepo

import (
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Person is a commit author.
type Person struct {
	// Name is the author's name.
	Name string
	// Email is the author's email address.
	Email string
}

// maxAuthorWalk bounds how far ManifestAuthor walks back.
const maxAuthorWalk = 100

// ManifestAuthor returns the author of the last commit at or before rev that
// changed something outside .osbgit/: the person whose manifest change a
// pass acts on, sent to brokers as the originating identity. osbgit's own
// status commits are skipped. When history is shallow, or every commit in
// reach touches only .osbgit/, the author of the oldest commit reached is
// returned.
func (r *Repo) ManifestAuthor(rev string) (Person, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkOpen(); err != nil {
		return Person{}, err
	}
	c, err := r.commit(rev)
	if err != nil {
		return Person{}, r.newError("read", "", err)
	}
	parts := []string{StatusDir}
	for i := 0; i < maxAuthorWalk; i++ {
		if c.NumParents() == 0 {
			return author(c), nil
		}
		parent, err := c.Parent(0)
		if err != nil {
			// Shallow history: the parent is not here.
			return author(c), nil
		}
		changed, err := r.changedOutside(parent.TreeHash, c.TreeHash, parts)
		if err != nil || changed {
			return author(c), nil
		}
		c = parent
	}
	return author(c), nil
}

func author(c *object.Commit) Person {
	return Person{Name: c.Author.Name, Email: c.Author.Email}
}
