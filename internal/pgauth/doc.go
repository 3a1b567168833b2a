// Package pgauth implements the server side of PostgreSQL password
// authentication: SCRAM-SHA-256 (RFC 5802, RFC 7677, as profiled by
// PostgreSQL's "SASL Authentication" protocol) and the legacy MD5 challenge.
//
// The package is transport-agnostic. It consumes and produces the SASL
// payload bytes only; the caller frames them in the protocol messages:
//
//	server → AuthenticationSASL            listing MechanismSCRAMSHA256
//	client → SASLInitialResponse           payload → SCRAMServer.ClientFirst
//	server → AuthenticationSASLContinue    payload ← ClientFirst's result
//	client → SASLResponse                  payload → SCRAMServer.ClientFinal
//	server → AuthenticationSASLFinal       payload ← ClientFinal's result
//	server → AuthenticationOk
//
// Errors returned by SCRAMServer wrap ErrAuthFailed (wrong password;
// PostgreSQL reports SQLSTATE 28P01, invalid_password), ErrProtocol (a
// malformed or unsupported client message; PostgreSQL reports 08P01,
// protocol_violation) or, for the server's own problems such as an unusable
// verifier, neither. After any error the conversation is over.
//
// # Channel binding
//
// Only SCRAM-SHA-256 is implemented, not SCRAM-SHA-256-PLUS, so the server
// must advertise only MechanismSCRAMSHA256. Clients that announce "n" (no
// channel binding support) or "y" (supported by the client, but the server
// did not offer it) are accepted; a client that asks for channel binding
// ("p=...") is rejected.
//
// # Password normalization (SASLprep)
//
// SCRAM specifies that passwords are normalized with SASLprep (RFC 4013)
// before hashing. This package applies only the trivial case: an ASCII
// password is used as is, which is exactly what SASLprep yields for it (or
// what PostgreSQL falls back to when SASLprep rejects ASCII control
// characters). A non-ASCII password is used as its raw UTF-8 bytes, the same
// thing PostgreSQL does when SASLprep fails. Clients such as libpq and pgx
// apply SASLprep before hashing, so a non-ASCII plain-text password only
// works if it is already in normalized form (NFKC, no characters that
// SASLprep maps to nothing or to a space). Verifiers created by PostgreSQL
// itself (ParseVerifier) are not affected: they were computed from the
// normalized password.
//
// # Unknown users
//
// The username inside the SCRAM messages is ignored, as PostgreSQL does: the
// user is the one named in the startup packet. To avoid revealing which
// users exist, a caller can run the exchange for an unknown user against a
// verifier derived from a random password and report ErrAuthFailed at the
// end, as PostgreSQL does.
package pgauth
