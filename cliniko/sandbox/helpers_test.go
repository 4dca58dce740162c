package sandbox_test

import (
	"encoding/xml"
	"strconv"
)

func xmlUnmarshal(b []byte, v any) error { return xml.Unmarshal(b, v) }

func itoa(n int) string { return strconv.Itoa(n) }
