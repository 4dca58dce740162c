package bridge

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/physitrack/pmsbridge"
	"github.com/physitrack/pmsbridge/store"
)

// SessionCookie is the name of the session cookie.
const SessionCookie = "pmsbridge_session"

// practitionerFrom returns the logged-in practitioner (nil when none).
func practitionerFrom(ctx context.Context) *store.Practitioner {
	p, _ := ctx.Value(ctxPractitioner).(*store.Practitioner)
	return p
}

// clinikoUserFrom returns the Cliniko user of the logged-in practitioner's
// saved key, as read at the start of the request (nil when none).
func clinikoUserFrom(ctx context.Context) *store.ClinikoUser {
	u, _ := ctx.Value(ctxClinikoUser).(*store.ClinikoUser)
	return u
}

// withSession puts the practitioner of a valid session cookie in the
// request context. An unknown or expired cookie is cleared.
func (s *Server) withSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(SessionCookie)
		if err != nil || c.Value == "" {
			next.ServeHTTP(w, r)
			return
		}
		sess, err := s.deps.Store.GetSession(r.Context(), c.Value)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				s.Error(w, r, err)
				return
			}
			s.clearSessionCookie(w)
			next.ServeHTTP(w, r)
			return
		}
		pr, cu, hasKey, err := s.deps.Store.PractitionerWithCliniko(r.Context(), sess.PractitionerID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			// Redis trouble or a record we cannot read: not a reason to end
			// the session (the cookie would be gone for good).
			s.Error(w, r, err)
			return
		}
		if err != nil || !pr.Active {
			s.clearSessionCookie(w)
			next.ServeHTTP(w, r)
			return
		}
		var user *store.ClinikoUser
		if hasKey {
			user = &cu
		}
		next.ServeHTTP(w, r.WithContext(loggedIn(r.Context(), c.Value, &pr, user)))
	})
}

// loggedIn puts a session's practitioner pr (active) and the Cliniko user
// of their saved key (nil: none) in ctx, as withSession does for every
// page and the receiver's fast path for a click.
func loggedIn(ctx context.Context, token string, pr *store.Practitioner, cu *store.ClinikoUser) context.Context {
	ctx = context.WithValue(ctx, ctxPractitioner, pr)
	if cu != nil {
		ctx = context.WithValue(ctx, ctxClinikoUser, cu)
	}
	ctx = context.WithValue(ctx, ctxSession, token)
	// What this practitioner asks for (a resend replays a failed
	// upload) is theirs in the jobs' history.
	return store.ActingAs(ctx, store.Actor{Via: store.ViaPractitioner, Who: pr.Email})
}

// requireLogin sends visitors without a session to the login page, and
// back here afterwards.
func (s *Server) requireLogin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if practitionerFrom(r.Context()) == nil {
			if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/imports/status" {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "not logged in"})
				return
			}
			next := r.URL.Path
			if r.URL.RawQuery != "" {
				next += "?" + r.URL.RawQuery
			}
			if r.Method != http.MethodGet {
				next = "/patients"
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		h(w, r)
	}
}

func (s *Server) setSessionCookie(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: token, Path: "/", HttpOnly: true,
		Secure: s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
		// No Max-Age: the server enforces idle and absolute expiry; the
		// browser drops the cookie when it closes.
	})
}

func (s *Server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", HttpOnly: true,
		Secure: s.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
		MaxAge: -1, Expires: time.Unix(0, 0),
	})
}

// localPath accepts only a path on this site (no scheme, no host, no
// "//evil.example" or "/\evil.example" tricks); anything else gives "".
func localPath(next string) string {
	if next == "" || len(next) > 2048 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return ""
	}
	if strings.ContainsAny(next, "\r\n\t\\") {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return next
}

type loginData struct {
	Email string
	Next  string
	Error string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if pr := practitionerFrom(r.Context()); pr != nil && next != "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.page(w, r, http.StatusOK, "login", "Log in", loginData{Next: next})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	email := strings.TrimSpace(r.PostForm.Get("email"))
	password := r.PostForm.Get("password")
	next := localPath(r.PostForm.Get("next"))
	if email == "" || password == "" {
		s.page(w, r, http.StatusUnauthorized, "login", "Log in", loginData{Email: email, Next: next, Error: "Enter your email address and your password."})
		return
	}
	pr, err := s.deps.Store.Authenticate(r.Context(), email, password, clientFrom(r))
	s.countAttempt("login", err)
	var le *store.LockedError
	switch {
	case errors.As(err, &le):
		// By the app's clock, which decided the lock.
		left := le.Until.Sub(s.cfg.Now())
		mins := int(left.Minutes()) + 1
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(left.Seconds())+1)))
		s.page(w, r, http.StatusTooManyRequests, "login", "Log in", loginData{Email: email, Next: next,
			Error: "Too many failed attempts. For your security, logging in is paused for about " + pmsbridge.Count(mins, "minute", "minutes") + ". Try again then, or ask your clinic's administrator to reset your password."})
		return
	case errors.Is(err, store.ErrLocked):
		s.page(w, r, http.StatusTooManyRequests, "login", "Log in", loginData{Email: email, Next: next,
			Error: "Too many failed attempts. For your security, logging in is paused for a while. Try again later."})
		return
	case errors.Is(err, store.ErrBusy):
		s.tooBusy(w, r)
		return
	case errors.Is(err, store.ErrBadCredentials):
		s.page(w, r, http.StatusUnauthorized, "login", "Log in", loginData{Email: email, Next: next, Error: "That email address and password do not match an active account. Check them and try again."})
		return
	case err != nil:
		s.Error(w, r, err)
		return
	}
	// A new session on every login (no session fixation); an old one on this
	// browser ends.
	if old, err := r.Cookie(SessionCookie); err == nil && old.Value != "" {
		_ = s.deps.Store.DeleteSession(r.Context(), old.Value)
	}
	token, _, err := s.deps.Store.CreateSession(r.Context(), pr.ID, clientFrom(r), r.UserAgent())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.setSessionCookie(w, token)
	if next == "" {
		next = "/patients"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		if err := s.deps.Store.DeleteSession(r.Context(), c.Value); err != nil {
			s.logger(r.Context()).Warn("delete session", "err", err)
		}
	}
	s.clearSessionCookie(w)
	_ = r.ParseForm()
	target := "/login"
	if next := localPath(r.PostForm.Get("next")); next != "" {
		target = "/login?next=" + url.QueryEscape(next)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}
