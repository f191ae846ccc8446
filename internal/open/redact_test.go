package open

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedactDSN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://dtx:s3cret@db:5432/dtx?sslmode=disable", "postgres://dtx:xxxxx@db:5432/dtx?sslmode=disable"},
		{"postgresql://dtx:p@ss:w0rd@db/dtx", "postgresql://dtx:xxxxx@db/dtx"},
		{"postgres://dtx@db/dtx?password=s3cret&sslmode=require&sslpassword=k3y", "postgres://dtx@db/dtx?password=xxxxx&sslmode=require&sslpassword=xxxxx"},
		{"mysql://root:s3cret@tcp(127.0.0.1:3306)/dtx?parseTime=true", "mysql://root:xxxxx@tcp(127.0.0.1:3306)/dtx?parseTime=true"},
		{"mysql://root@tcp(127.0.0.1:3306)/dtx", "mysql://root@tcp(127.0.0.1:3306)/dtx"},
		{"sqlite://dtx-data/coordinator.db", "sqlite://dtx-data/coordinator.db"},
		{"dtx-data/coordinator.db?init_empty=1", "dtx-data/coordinator.db?init_empty=1"},
		{"ftp://u:s3cret@host/x", "ftp://u:xxxxx@host/x"},
	} {
		got := RedactDSN(tc.in)
		require.Equal(t, tc.want, got, tc.in)
		require.NotContains(t, got, "s3cret")
		require.Equal(t, got, DescribeStore(tc.in))
	}
}

func TestUnsupportedSchemeErrorRedacted(t *testing.T) {
	_, err := Store(t.Context(), "ftp://u:s3cret@host/x")
	require.Error(t, err)
	require.False(t, strings.Contains(err.Error(), "s3cret"), err.Error())
}
