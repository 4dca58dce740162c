package app

import (
	"net/http"

	"github.com/hibiken/asynqmon"
	"github.com/physitrack/pmsbridge/bridge"
	"github.com/physitrack/pmsbridge/config"
	"github.com/redis/go-redis/v9"
)

// queueMonitor is asynqmon, the queue monitor people who run asynq know,
// for bridge to serve under bridge.QueuesPath behind the support login:
// read-only unless admin.queues_actions is set. It shares the process's
// Redis client (dev's embedded Redis and Sentinel included); it is never
// closed on its own (asynqmon's Close would close the shared client), the
// process closes the client.
func queueMonitor(rdb redis.UniversalClient, admin config.Admin) http.Handler {
	return asynqmon.New(asynqmon.Options{
		RootPath:     bridge.QueuesPath,
		RedisConnOpt: sharedRedis{rdb},
		ReadOnly:     !admin.QueuesActions,
	})
}

// sharedRedis hands asynqmon the process's Redis client (asynq's
// RedisConnOpt).
type sharedRedis struct{ rdb redis.UniversalClient }

func (s sharedRedis) MakeRedisClient() any { return s.rdb }
