//! Cross-node events against the real Redis: what one connection publishes
//! reaches subscribers on others, a subscription outlives a dropped
//! connection, and an unreachable Redis is an error, not a hang.

mod common;

use std::time::{Duration, Instant};

use common::proxy::TcpProxy;
use common::{redis_address, redis_url, refused_port, unique_name};
use futures_util::StreamExt;
use virserver_queue::{EventSubscription, EventsConfig, QueueError, RedisEvents};

async fn connect(url: &str) -> RedisEvents {
    RedisEvents::connect(url, EventsConfig::default())
        .await
        .expect("the test Redis server must be running")
}

async fn next_event(subscription: &mut EventSubscription) -> String {
    tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .expect("an event within 5 s")
        .expect("subscriptions do not end")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_reach_subscribers_on_other_connections() {
    let channel = unique_name("events");
    let other_channel = unique_name("events");
    let publisher = connect(&redis_url()).await;
    let mut first = connect(&redis_url())
        .await
        .subscribe(&channel)
        .await
        .unwrap();
    let mut second = connect(&redis_url())
        .await
        .subscribe(&channel)
        .await
        .unwrap();
    assert_eq!(first.channel(), channel);

    assert_eq!(
        publisher
            .publish(&other_channel, "{\"not\":\"ours\"}")
            .await
            .unwrap(),
        0
    );
    let progress = r#"{"job":"job-1","state":"running","progress":0.5}"#;
    assert_eq!(publisher.publish(&channel, progress).await.unwrap(), 2);
    publisher
        .publish(&channel, r#"{"job":"job-1","state":"passed"}"#)
        .await
        .unwrap();

    for subscription in [&mut first, &mut second] {
        assert_eq!(next_event(subscription).await, progress);
        assert_eq!(
            next_event(subscription).await,
            r#"{"job":"job-1","state":"passed"}"#
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_resubscribes_after_its_connection_drops() {
    let channel = unique_name("events");
    let proxy = TcpProxy::start(redis_address()).await;
    let publisher = connect(&redis_url()).await;
    let mut subscription = connect(&proxy.url(""))
        .await
        .subscribe(&channel)
        .await
        .unwrap();
    publisher.publish(&channel, "before").await.unwrap();
    assert_eq!(next_event(&mut subscription).await, "before");

    proxy.cut_connections();
    // Events published while it reconnects are lost (pub/sub keeps
    // nothing); keep publishing until one arrives.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut sent = 0;
    let received = loop {
        assert!(
            Instant::now() < deadline,
            "no event after the reconnection ({sent} sent)"
        );
        publisher
            .publish(&channel, &format!("after-{sent}"))
            .await
            .unwrap();
        sent += 1;
        if let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(200), subscription.next()).await
        {
            break event;
        }
    };
    assert!(received.starts_with("after-"), "{received}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_is_unavailable() {
    let url = format!("redis://:secret@127.0.0.1:{}", refused_port());
    let config = EventsConfig {
        operation_timeout: Duration::from_secs(2),
        ..EventsConfig::default()
    };
    let started = Instant::now();
    match RedisEvents::connect(&url, config).await {
        Err(error @ QueueError::Unavailable { .. }) => {
            assert!(!error.to_string().contains("secret"), "{error}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(4));

    let mut proxy = TcpProxy::start(redis_address()).await;
    let events = RedisEvents::connect(
        &proxy.url(""),
        EventsConfig {
            operation_timeout: Duration::from_secs(1),
            ..EventsConfig::default()
        },
    )
    .await
    .unwrap();
    proxy.stop();
    let channel = unique_name("events");
    assert!(matches!(
        events.subscribe(&channel).await,
        Err(QueueError::Unavailable { .. })
    ));
    assert!(matches!(
        events.publish(&channel, "{}").await,
        Err(QueueError::Unavailable { .. })
    ));
}
