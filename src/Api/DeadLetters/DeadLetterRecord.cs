namespace Async.Serving.Api.DeadLetters;

/// <summary>
/// A dead-lettered job message as the sweeper kept it: which queue it was found in, why MassTransit
/// put it there, and the message itself (the <c>RunInference</c> JSON), to send again on requeue.
/// </summary>
public sealed record DeadLetterRecord(string JobId, string Queue, string Reason, DateTimeOffset At, string? MessageJson);
