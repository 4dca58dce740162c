package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RedisURL is a parsed redis.url.
type RedisURL struct {
	Scheme     string   // redis, rediss or redis-sentinel
	Addrs      []string // one address; several sentinels for redis-sentinel
	MasterName string   // redis-sentinel only
	Username   string
	Password   string
	DB         int
}

// ParseRedisURL parses redis://, rediss:// and redis-sentinel:// URLs:
//
//	redis://[user:password@]host[:port][/db]
//	rediss://[user:password@]host[:port][/db]
//	redis-sentinel://[user:password@]host1[:port][,host2[:port]…][/db]?master=name
//
// For redis-sentinel the password is used for the sentinels and the master.
// Error messages never contain the password.
func ParseRedisURL(raw string) (RedisURL, error) {
	var r RedisURL
	if raw == "" {
		return r, fmt.Errorf("is empty: use redis://host:6379/0")
	}
	// url.Parse rejects a host list ("s1:26379,s2:26379"), so take the hosts
	// out before parsing and put a placeholder in their place.
	var hostList string
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		end := strings.IndexAny(rest, "/?")
		if end < 0 {
			end = len(rest)
		}
		auth := strings.LastIndex(rest[:end], "@") + 1
		hostList = rest[auth:end]
		raw = raw[:i+3] + rest[:auth] + "placeholder" + rest[end:]
		if hostList == "" {
			raw = raw[:i+3] + rest
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return r, fmt.Errorf("is not a valid URL: use redis://host:6379/0, rediss://… or redis-sentinel://host:26379?master=name")
	}
	r.Scheme = u.Scheme
	switch u.Scheme {
	case "redis", "rediss", "redis-sentinel":
	default:
		return r, fmt.Errorf("scheme %q is not supported: use redis://, rediss:// or redis-sentinel://", u.Scheme)
	}
	if u.User != nil {
		r.Username = u.User.Username()
		r.Password, _ = u.User.Password()
	}
	if hostList == "" {
		return r, fmt.Errorf("has no host: use %s://host:port", u.Scheme)
	}
	defPort := "6379"
	if u.Scheme == "redis-sentinel" {
		defPort = "26379"
	}
	for _, h := range strings.Split(hostList, ",") {
		if h == "" {
			return r, fmt.Errorf("has an empty host in its host list")
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			host, port = h, defPort
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return r, fmt.Errorf("has a bad port %q", port)
		}
		r.Addrs = append(r.Addrs, net.JoinHostPort(host, port))
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return r, fmt.Errorf("path must be a database number like /0, got %q", "/"+p)
		}
		r.DB = n
	}
	if u.Scheme == "redis-sentinel" {
		r.MasterName = u.Query().Get("master")
		if r.MasterName == "" {
			return r, fmt.Errorf("redis-sentinel URL needs ?master=<name>")
		}
	} else if len(r.Addrs) > 1 {
		return r, fmt.Errorf("lists several hosts: only redis-sentinel:// takes a list")
	}
	return r, nil
}

// Client builds the go-redis client for r. asynq's client, server and
// inspector are built from the same client so every part shares one pool.
func (r RedisURL) Client() redis.UniversalClient {
	if r.Scheme == "redis-sentinel" {
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: r.MasterName, SentinelAddrs: r.Addrs,
			SentinelPassword: r.Password, Username: r.Username, Password: r.Password,
			DB: r.DB,
		})
	}
	opt := &redis.Options{Addr: r.Addrs[0], Username: r.Username, Password: r.Password, DB: r.DB}
	if r.Scheme == "rediss" {
		host, _, _ := net.SplitHostPort(r.Addrs[0])
		opt.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return redis.NewClient(opt)
}

// Redacted returns the URL with its password hidden.
func (r RedisURL) Redacted() string {
	auth := ""
	if r.Password != "" {
		auth = r.Username + ":xxxxx@"
	} else if r.Username != "" {
		auth = r.Username + "@"
	}
	s := fmt.Sprintf("%s://%s%s/%d", r.Scheme, auth, strings.Join(r.Addrs, ","), r.DB)
	if r.MasterName != "" {
		s += "?master=" + url.QueryEscape(r.MasterName)
	}
	return s
}
