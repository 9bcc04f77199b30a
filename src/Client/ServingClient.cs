namespace Async.Serving.Client;

/// <summary>The Async.Serving HTTP API as a .NET client.</summary>
public sealed partial class ServingClient;
