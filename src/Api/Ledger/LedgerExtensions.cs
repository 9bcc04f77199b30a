namespace Async.Serving.Api.Ledger;

public static class LedgerExtensions
{
    /// <summary>
    /// The job ledger in PostgreSQL (the data source registered by the API key store) and, unless
    /// turned off, a writer that feeds it from the job store's Redis stream.
    /// </summary>
    public static IHostApplicationBuilder AddLedger(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<LedgerOptions>()
            .BindConfiguration(LedgerOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<LedgerStore>();
        builder.Services.AddHostedService<LedgerSchemaMigration>();
        if (builder.Configuration.GetValue($"{LedgerOptions.Section}:{nameof(LedgerOptions.RunWriter)}", true))
        {
            builder.Services.AddSingleton<ILedgerSink>(sp => sp.GetRequiredService<LedgerStore>());
            builder.Services.AddSingleton<ILedgerSource, RedisLedgerSource>();
            builder.Services.AddSingleton<LedgerWriter>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<LedgerWriter>());
        }

        return builder;
    }
}
