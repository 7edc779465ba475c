package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/kowai/kowai/gateway/auth"
	"github.com/kowai/kowai/node"
)

// roleFlags collects repeated --role flags.
type roleFlags []auth.Role

func (r *roleFlags) String() string { return fmt.Sprint(*r) }

func (r *roleFlags) Set(s string) error {
	role, err := auth.ParseRole(s)
	if err != nil {
		return fmt.Errorf("want one of user, premium, moderator, admin")
	}
	*r = append(*r, role)
	return nil
}

func userCmd(ctx context.Context, args []string, io stdio, getenv func(string) string) error {
	if len(args) > 0 && (args[0] == "--help" || args[0] == "-help" || args[0] == "-h") {
		args = []string{"create", "--help"}
	}
	if len(args) == 0 || args[0] != "create" {
		return usagef("want: kowai user create --email E --role R [--role R2] [--name N]")
	}
	fs := flagSet("user create", "user create --email E --role R [--role R2] [--name N]  (the password is read from stdin)", io)
	email := fs.String("email", "", "the user's email address")
	name := fs.String("name", "", "display name")
	var roles roleFlags
	fs.Var(&roles, "role", "a role: user, premium, moderator or admin (repeatable)")
	cfg, log, err := withConfig(fs, args[1:], io, getenv, databaseSettings()...)
	if err != nil {
		return err
	}
	if *email == "" || len(roles) == 0 {
		return usagef("--email and at least one --role are required")
	}
	password, err := readPassword(io)
	if err != nil {
		return err
	}
	db, mig, err := node.OpenDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := mig.CheckCurrent(ctx); err != nil {
		return err
	}
	// Creating a user issues no token, so it needs no KOWAI_JWT_SECRET: a
	// throwaway key satisfies the token issuer the service is built with.
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generate a throwaway token key: %w", err)
	}
	cfg.JWTSecret = hex.EncodeToString(key)
	svc, err := node.NewAuth(cfg, db, nil, node.NewLimiter(nil), log)
	if err != nil {
		return err
	}
	u, err := svc.CreateUser(ctx, auth.NewUser{Email: *email, Password: password, Name: *name, Roles: roles})
	var fe *auth.FieldError
	switch {
	case errors.As(err, &fe):
		return usagef("--%s: %s", fe.Field, fe.Message)
	case errors.Is(err, auth.ErrEmailTaken):
		return fmt.Errorf("a user with email %s exists already", *email)
	case err != nil:
		return err
	}
	_, err = fmt.Fprintf(io.out, "created user %s <%s> with roles %v\n", u.ID, u.Email, u.Roles)
	return err
}

// readPassword reads the first line of stdin.
func readPassword(io stdio) (string, error) {
	line, err := bufio.NewReader(io.in).ReadString('\n')
	if err != nil && line == "" {
		return "", usagef("the password is read from stdin: got nothing")
	}
	return strings.TrimRight(line, "\r\n"), nil
}
