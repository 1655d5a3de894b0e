package redact

import (
	"fmt"

	"github.com/sirupsen/logrus"
)

// Formatter wraps a logrus formatter so that no known secret reaches a log
// line: the entry's message and field values are scrubbed before
// formatting (where a value is still in the form a broker or an error
// quoted it), and the formatted line after (where the format itself, JSON
// or quoted text, escaped a value). Fields keep their names; a field whose
// value held a secret is rendered as its scrubbed string.
type Formatter struct {
	// Set holds the values to scrub (nil: none).
	Set *Set
	// Next formats the scrubbed entry.
	Next logrus.Formatter
}

// Format implements logrus.Formatter.
func (f *Formatter) Format(e *logrus.Entry) ([]byte, error) {
	if f.Set.Len() == 0 {
		return f.Next.Format(e)
	}
	c := *e
	c.Message = f.Set.Scrub(e.Message)
	c.Data = make(logrus.Fields, len(e.Data))
	for k, v := range e.Data {
		c.Data[k] = f.scrubValue(v)
	}
	out, err := f.Next.Format(&c)
	if err != nil {
		return nil, err
	}
	return []byte(f.Set.Scrub(string(out))), nil
}

func (f *Formatter) scrubValue(v any) any {
	var s string
	switch t := v.(type) {
	case string:
		s = t
	case error:
		s = t.Error()
	case fmt.Stringer:
		s = t.String()
	default:
		return v
	}
	if red := f.Set.Scrub(s); red != s {
		return red
	}
	return v
}
