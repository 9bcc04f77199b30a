namespace Async.Serving.Api.DeadLetters;

public static class DeadLettersExtensions
{
    /// <summary>
    /// Dead letters: the store of kept messages, the requeue, the dashboard page and, unless turned
    /// off, the sweeper that ends the jobs of dead-lettered messages.
    /// </summary>
    public static IHostApplicationBuilder AddDeadLetters(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<DeadLetterOptions>()
            .BindConfiguration(DeadLetterOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<DeadLetterStore>();
        builder.Services.AddSingleton<DeadLetterRequeue>();
        builder.Services.AddSingleton<DeadLetterSweeper>();
        if (builder.Configuration.GetValue($"{DeadLetterOptions.Section}:{nameof(DeadLetterOptions.RunSweeper)}", true))
        {
            builder.Services.AddHostedService(sp => sp.GetRequiredService<DeadLetterSweeper>());
        }

        DeadLetterPages.Register();
        return builder;
    }
}
