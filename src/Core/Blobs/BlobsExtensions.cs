using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Async.Serving.Blobs;

public static class BlobsExtensions
{
    /// <summary>The blob store (section <c>Serving:Blobs</c>, validated at start): the file system one.</summary>
    public static IHostApplicationBuilder AddBlobStore(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptionsWithValidateOnStart<BlobOptions>()
            .BindConfiguration(BlobOptions.Section)
            .ValidateDataAnnotations();
        builder.Services.AddSingleton<FileSystemBlobStore>();
        builder.Services.AddSingleton<IBlobStore>(sp => sp.GetRequiredService<FileSystemBlobStore>());
        return builder;
    }
}
