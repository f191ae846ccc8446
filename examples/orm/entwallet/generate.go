package entwallet

//go:generate go run -mod=mod entgo.io/ent/cmd/ent generate ./ent/schema
