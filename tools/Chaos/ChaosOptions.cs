using System.Globalization;

namespace Async.Serving.Chaos;

/// <summary>The driver's command line (scripts/chaos.sh passes every one of them; docs/chaos.md lists them).</summary>
internal sealed record ChaosOptions
{
    /// <summary>The API instances (<c>--url a,b</c>): submits and reads go to each in turn.</summary>
    public required IReadOnlyList<Uri> ApiUrls { get; init; }

    /// <summary>From the environment (<c>SERVING_API_KEY</c>), so that it does not show in the process list.</summary>
    public required string ApiKey { get; init; }

    /// <summary>The workers' health ports (<c>/readyz</c>, <c>--worker-url a,b</c>); none: no worker's health is checked.</summary>
    public IReadOnlyList<Uri> WorkerUrls { get; init; } = [];

    /// <summary>The address the webhook receiver listens on (an address the API instances reach).</summary>
    public string ReceiverHost { get; init; } = "127.0.0.1";

    /// <summary>Every this many jobs one has a <c>completed</c> webhook (1: every job).</summary>
    public int WebhookEvery { get; init; } = 2;

    /// <summary>Where the accepted jobs' ids are written, one a line.</summary>
    public string? AcceptedFile { get; init; }

    /// <summary>Requests of the rate-limit probe (0: no probe), sent at once over every API instance before the submits.</summary>
    public int RateProbeRequests { get; init; }

    /// <summary>The API instances' <c>Serving:RateLimits:Burst</c> and <c>PermitsPerSecond</c>, for the probe's bound.</summary>
    public int RateBurst { get; init; }

    public int RatePerSecond { get; init; }

    public int Jobs { get; init; } = 1000;

    /// <summary>Submits in flight at once.</summary>
    public int Concurrency { get; init; } = 16;

    /// <summary>Submits are spread evenly over this time, so that the faults meet submits as well as running jobs.</summary>
    public TimeSpan SubmitSpread { get; init; } = TimeSpan.Zero;

    /// <summary>How long one job's submit keeps being retried before it is given up (counted in not_accepted).</summary>
    public TimeSpan SubmitGiveUp { get; init; } = TimeSpan.FromMinutes(10);

    public string Model { get; init; } = "resnet18";

    /// <summary>Written once the receiver listens and the signing secret is known: the script starts its faults then.</summary>
    public string? ReadyFile { get; init; }

    /// <summary>The script creates it after its last fault; the settle time starts when it exists (and the submits are done).</summary>
    public string? FaultsDoneFile { get; init; }

    public TimeSpan FaultsWait { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>Wait after the faults, before polling.</summary>
    public TimeSpan Settle { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long polling may take, after the settle time, until every accepted job is terminal.</summary>
    public TimeSpan PollDeadline { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How long, after polling, the job.completed webhooks of terminal jobs may still take to arrive.</summary>
    public TimeSpan WebhookWait { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Share of webhook ids (percent) whose first delivery the receiver answers 503, so that retries are exercised.</summary>
    public int FailFirstPercent { get; init; } = 10;

    /// <summary>Where the ids behind each non-zero count are written (JSON).</summary>
    public string? DetailsFile { get; init; }

    public static ChaosOptions Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            {
                throw new ArgumentException($"Expected --name value pairs, got '{args[i]}'.");
            }

            values[args[i][2..]] = args[++i];
        }

        string? Text(string name) => values.Remove(name, out var v) ? v : null;
        int Int(string name, int fallback) => Text(name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        TimeSpan Seconds(string name, TimeSpan fallback) =>
            Text(name) is { } v ? TimeSpan.FromSeconds(double.Parse(v, CultureInfo.InvariantCulture)) : fallback;

        var key = Environment.GetEnvironmentVariable("SERVING_API_KEY");
        if (string.IsNullOrEmpty(key))
        {
            throw new ArgumentException("SERVING_API_KEY is not set.");
        }

        static Uri[] Urls(string list) => [.. list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(u => new Uri(u))];
        var defaults = new ChaosOptions { ApiUrls = [new Uri("http://127.0.0.1:5080")], ApiKey = key };
        var options = defaults with
        {
            ApiUrls = Text("url") is { } url ? Urls(url) : defaults.ApiUrls,
            WorkerUrls = Text("worker-url") is { } worker ? Urls(worker) : [],
            ReceiverHost = Text("receiver-host") ?? defaults.ReceiverHost,
            WebhookEvery = Int("webhook-every", defaults.WebhookEvery),
            AcceptedFile = Text("accepted-file"),
            RateProbeRequests = Int("rate-probe", 0),
            RateBurst = Int("rate-burst", 0),
            RatePerSecond = Int("rate-per-second", 0),
            Jobs = Int("jobs", defaults.Jobs),
            Concurrency = Int("concurrency", defaults.Concurrency),
            SubmitSpread = Seconds("submit-seconds", defaults.SubmitSpread),
            SubmitGiveUp = Seconds("submit-give-up-seconds", defaults.SubmitGiveUp),
            Model = Text("model") ?? defaults.Model,
            ReadyFile = Text("ready-file"),
            FaultsDoneFile = Text("faults-done-file"),
            FaultsWait = Seconds("faults-wait-seconds", defaults.FaultsWait),
            Settle = Seconds("settle-seconds", defaults.Settle),
            PollDeadline = Seconds("poll-seconds", defaults.PollDeadline),
            WebhookWait = Seconds("webhook-wait-seconds", defaults.WebhookWait),
            FailFirstPercent = Int("fail-first-percent", defaults.FailFirstPercent),
            DetailsFile = Text("details-file"),
        };
        if (values.Count > 0)
        {
            throw new ArgumentException($"Unknown options: {string.Join(", ", values.Keys.Select(k => "--" + k))}.");
        }

        if (options.Jobs < 1 || options.Concurrency < 1 || options.FailFirstPercent is < 0 or > 100 || options.WebhookEvery < 1 || options.ApiUrls.Count == 0)
        {
            throw new ArgumentException("--jobs, --concurrency and --webhook-every must be at least 1; --fail-first-percent 0 to 100; --url names at least one API.");
        }

        if (options.RateProbeRequests > 0 && (options.RateBurst < 1 || options.RatePerSecond < 1))
        {
            throw new ArgumentException("--rate-probe needs --rate-burst and --rate-per-second, the API instances' limits.");
        }

        return options;
    }
}
