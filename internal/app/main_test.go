package app_test

import (
	"os"
	"testing"

	"github.com/physitrack/pmsbridge/internal/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }
