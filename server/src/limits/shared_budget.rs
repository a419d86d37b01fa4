//! Account budgets shared by every replica, in Redis.
//!
//! One hash per account (`<prefix><hex account id>`: `tokens`, `at`) holds
//! its token bucket; one Lua script refills it from the time since `at`
//! (Redis's own clock, so replicas' clocks do not matter), then takes the
//! charge or refuses it whole, or gives a refund back, in one atomic step.
//! A bucket that is full again is deleted, and every stored bucket expires
//! when it would be full, so Redis holds only accounts that spent something
//! recently. The script is sent once and run by its SHA1 (`EVALSHA`,
//! falling back to `EVAL` if Redis lost it): one round trip per admission.
//!
//! When Redis cannot be reached within [`TIMEOUT`], the caller is told
//! [`Unreachable`] and must refuse the request (fail closed); the
//! connection manager reconnects by itself on a later call. A refund that
//! cannot be delivered is lost: the account keeps the charge (never a
//! free evaluation).

use std::time::Duration;

use cds_core::AccountId;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::token_bucket::Rate;
use crate::error::ServerError;

/// The longest one budget check may wait for Redis before the request is
/// refused.
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// What a client is told to wait when Redis is unreachable.
pub const RETRY_AFTER_UNREACHABLE: Duration = Duration::from_secs(2);

/// Refill, then take `ARGV[3]` tokens (or give back `-ARGV[3]`), atomically.
/// Returns `{1, tokens}` when taken or given back, `{0, tokens}` when
/// refused (nothing taken). Tokens are returned as text: Redis truncates
/// Lua numbers to integers.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local burst = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1]) or burst
local at = tonumber(v[2]) or now
if now > at then tokens = math.min(burst, tokens + (now - at) * per_ms) end
if n > tokens then return {0, tostring(tokens)} end
tokens = math.min(burst, tokens - n)
if tokens >= burst then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
  if per_ms > 0 then
    redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / per_ms) + 1000)
  else
    redis.call('PERSIST', KEYS[1])
  end
end
return {1, tostring(tokens)}
";

/// Redis did not answer: the request must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreachable;

/// The budgets of all accounts, in Redis.
#[derive(Clone)]
pub struct SharedBudgets {
    conn: ConnectionManager,
    script: redis::Script,
    prefix: String,
    rate: Rate,
    /// Where refunds run: an admission may be dropped off the runtime.
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for SharedBudgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBudgets")
            .field("prefix", &self.prefix)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl SharedBudgets {
    /// Budgets of `rate` in the Redis at `url`, under keys starting with
    /// `prefix`. Connects lazily: a Redis that is down at start makes
    /// requests fail (closed) until it answers. Call inside the runtime.
    pub fn new(url: &str, prefix: &str, rate: Rate) -> Result<Self, ServerError> {
        let client = redis::Client::open(url).map_err(|e| {
            ServerError::Config(format!(
                "budgets: not a usable Redis URL ({}); expected redis://host:port/db",
                e.category()
            ))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| {
            ServerError::Config(format!(
                "budgets: cannot set up the Redis connection ({})",
                e.category()
            ))
        })?;
        Ok(Self {
            conn,
            script: redis::Script::new(SCRIPT),
            prefix: prefix.to_owned(),
            rate,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// The shape of every bucket.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    fn key(&self, account: &AccountId) -> String {
        format!("{}{}", self.prefix, hex::encode(account.as_bytes()))
    }

    /// Run the script: `Ok((taken, tokens left))`.
    async fn run(&self, account: &AccountId, n: f64) -> Result<(bool, f64), Unreachable> {
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(self.key(account));
        invocation
            .arg(self.rate.burst.to_string())
            .arg((self.rate.per_sec / 1000.0).to_string())
            .arg(n.to_string());
        let call = invocation.invoke_async::<(i64, String)>(&mut conn);
        match tokio::time::timeout(TIMEOUT, call).await {
            Ok(Ok((taken, tokens))) => Ok((taken == 1, tokens.parse().unwrap_or(0.0))),
            Ok(Err(e)) => {
                tracing::warn!(error = %e.category(), "the budget store (Redis) failed");
                Err(Unreachable)
            }
            Err(_) => {
                tracing::warn!("the budget store (Redis) did not answer in time");
                Err(Unreachable)
            }
        }
    }

    /// Take `n` tokens from `account`'s bucket, or take nothing and say
    /// when they will be there (`None`: never).
    pub async fn take(
        &self,
        account: &AccountId,
        n: f64,
    ) -> Result<Result<(), Option<Duration>>, Unreachable> {
        let (taken, tokens) = self.run(account, n).await?;
        if taken {
            return Ok(Ok(()));
        }
        if n > self.rate.burst || self.rate.per_sec <= 0.0 {
            return Ok(Err(None));
        }
        Ok(Err(Duration::try_from_secs_f64(
            (n - tokens).max(0.0) / self.rate.per_sec,
        )
        .ok()))
    }

    /// Give `n` tokens back to `account`, in the background.
    pub fn refund(&self, account: AccountId, n: f64) {
        let this = self.clone();
        self.runtime.spawn(async move {
            if this.run(&account, -n).await.is_err() {
                tracing::warn!("a refund could not reach the budget store; the charge stays");
            }
        });
    }

    /// Tokens `account` could spend now.
    #[cfg(test)]
    pub async fn available(&self, account: &AccountId) -> Result<f64, Unreachable> {
        Ok(self.run(account, 0.0).await?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Redis of the tests, or `None` (the test is then skipped).
    fn redis_url() -> Option<String> {
        let url = std::env::var("CDS_TEST_REDIS_URL").ok();
        if url.is_none() {
            eprintln!("skipped: CDS_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379)");
        }
        url
    }

    fn unique_prefix(test: &str) -> String {
        format!(
            "cds-test:{test}:{}:{}:",
            std::process::id(),
            crate::limits::budget_store::unix_ms_now()
        )
    }

    fn account(s: &str) -> AccountId {
        AccountId::new(s.as_bytes().to_vec()).expect("valid")
    }

    const RATE: Rate = Rate {
        burst: 10.0,
        per_sec: 0.0,
    };

    #[tokio::test]
    async fn two_replicas_take_from_one_bucket_and_a_refund_comes_back() {
        let Some(url) = redis_url() else { return };
        let prefix = unique_prefix("shared");
        let one = SharedBudgets::new(&url, &prefix, RATE).expect("configures");
        let two = SharedBudgets::new(&url, &prefix, RATE).expect("configures");
        let a = account("a");
        assert_eq!(one.take(&a, 6.0).await, Ok(Ok(())));
        assert_eq!(two.take(&a, 6.0).await, Ok(Err(None)), "refused whole");
        assert_eq!(two.available(&a).await, Ok(4.0), "a refusal takes nothing");
        assert_eq!(two.take(&a, 4.0).await, Ok(Ok(())));
        assert_eq!(
            one.take(&account("b"), 10.0).await,
            Ok(Ok(())),
            "accounts do not share"
        );
        two.refund(a.clone(), 3.0);
        let mut back = 0.0;
        for _ in 0..100 {
            back = one.available(&a).await.expect("reachable");
            if back > 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(back, 3.0);
    }

    #[tokio::test]
    async fn a_bucket_refills_with_time_and_never_beyond_its_burst() {
        let Some(url) = redis_url() else { return };
        let rate = Rate {
            burst: 10.0,
            per_sec: 1000.0,
        };
        let b = SharedBudgets::new(&url, &unique_prefix("refill"), rate).expect("configures");
        let a = account("a");
        assert_eq!(b.take(&a, 10.0).await, Ok(Ok(())));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(b.available(&a).await, Ok(10.0));
        assert_eq!(
            b.take(&a, 11.0).await,
            Ok(Err(None)),
            "over the burst: never"
        );
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_reported_as_unreachable() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = format!("redis://127.0.0.1:{port}");
        let b = SharedBudgets::new(&url, "cds-test:down:", RATE).expect("configures lazily");
        assert_eq!(b.take(&account("a"), 1.0).await, Err(Unreachable));
    }
}
