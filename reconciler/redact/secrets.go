package redact

// AddSecretData records every value of a Secret's data.
func (s *Set) AddSecretData(data map[string][]byte) {
	if s == nil {
		return
	}
	vals := make([]string, 0, len(data))
	for _, v := range data {
		vals = append(vals, string(v))
	}
	s.Add(vals...)
}
