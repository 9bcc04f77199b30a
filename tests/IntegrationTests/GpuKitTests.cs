using System.Text.Json;

namespace Async.Serving.IntegrationTests;

/// <summary>
/// The GPU benchmark kit end to end on this CPU machine: scripts/gpu-kit.sh publishes and packs it in
/// pieces; the pieces go to a folder that stands for the GPU host, where run.sh runs with no .NET on
/// PATH, finds the CUDA libraries of a pip package layout (empty stand-ins here, which cannot load),
/// falls back to CPU and says so. Then a damaged and a missing piece are refused.
/// </summary>
public sealed class GpuKitTests : IDisposable
{
    private const int PieceMib = 40;
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("serving-gpu-kit-");

    public void Dispose() => _work.Delete(recursive: true);

    [Fact]
    public async Task The_kit_is_packed_in_small_pieces_reassembled_on_a_host_without_dotnet_and_runs_on_CPU_when_CUDA_does_not_load()
    {
        var kit = Path.Combine(_work.FullName, "kit");
        var packed = await ScriptRunner.RunAsync($"bash scripts/gpu-kit.sh --out '{kit}' --piece-mib {PieceMib}",
            new Dictionary<string, string> { ["SERVING_MODELS_DIR"] = ServingFixture.ModelsPath }, TimeSpan.FromMinutes(20));
        Assert.True(packed.ExitCode == 0, packed.ToString());

        var pieces = Directory.GetFiles(kit, "kit.tar.gz.part-*").Order(StringComparer.Ordinal).ToList();
        Assert.True(pieces.Count >= 2, $"{pieces.Count} pieces");
        Assert.All(pieces, p => Assert.True(new FileInfo(p).Length <= PieceMib * 1024L * 1024, $"{p}: {new FileInfo(p).Length} bytes"));
        var listed = File.ReadAllLines(Path.Combine(kit, "SHA256SUMS")).Select(l => l.Split("  ")[1]).ToList();
        Assert.Equal(pieces.Select(Path.GetFileName), listed);

        // The "GPU host": a copy of the kit folder, a pip-style CUDA 13 layout whose libraries are empty
        // files (found, but not loadable), and an environment with no dotnet on PATH.
        var host = Path.Combine(_work.FullName, "host");
        Directory.CreateDirectory(host);
        foreach (var file in Directory.GetFiles(kit))
        {
            File.Copy(file, Path.Combine(host, Path.GetFileName(file)));
        }

        var venv = Path.Combine(_work.FullName, "venv");
        var cu13 = Path.Combine(venv, "lib", "python3.12", "site-packages", "nvidia", "cu13", "lib");
        var cudnn = Path.Combine(venv, "lib", "python3.12", "site-packages", "nvidia", "cudnn", "lib");
        Directory.CreateDirectory(cu13);
        Directory.CreateDirectory(cudnn);
        foreach (var lib in new[] { "libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10" })
        {
            await File.WriteAllBytesAsync(Path.Combine(cu13, lib), []);
        }

        await File.WriteAllBytesAsync(Path.Combine(cudnn, "libcudnn.so.9"), []);
        string RunOnHost(string args) =>
            $"env -i HOME='{_work.FullName}' PATH=/usr/bin:/bin VIRTUAL_ENV='{venv}' GPU_KIT_PYTHON=/nonexistent bash '{host}/run.sh' {args}";

        var run = await ScriptRunner.RunAsync(RunOnHost("--device-batches 1,2 --device-seconds 0.1 --decode-images 2"),
            new Dictionary<string, string>(), TimeSpan.FromMinutes(10), workingDirectory: _work.FullName);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains($"reassembled {pieces.Count} pieces, checksums OK", run.Output, StringComparison.Ordinal);
        Assert.Contains($"libcublasLt.so.13: {cu13}", run.Output, StringComparison.Ordinal);
        Assert.Contains($"libcudnn.so.9: {cudnn}", run.Output, StringComparison.Ordinal);
        Assert.Contains($"{cu13}/libcublasLt.so.13: file too short", run.Output, StringComparison.Ordinal); // the loader looked there
        Assert.Contains("FP32: provider CPU (CUDA did not load", run.Output, StringComparison.Ordinal);
        Assert.Contains("FP32 batch   1:", run.Output, StringComparison.Ordinal);
        Assert.Contains("FP32 batch   2:", run.Output, StringComparison.Ordinal);
        Assert.Contains("these are CPU figures (fallback)", run.Output, StringComparison.Ordinal);

        using var device = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(host, "results", "device.json")));
        var fp32 = device.RootElement.GetProperty("models")[0];
        Assert.Equal("cpu", fp32.GetProperty("provider").GetString());
        Assert.Equal([1, 2], fp32.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("batch_size").GetInt32()));
        Assert.All(fp32.GetProperty("batches").EnumerateArray(), b => Assert.True(b.GetProperty("images_per_second").GetDouble() > 0));
        var decode = device.RootElement.GetProperty("decode").EnumerateArray().ToList();
        Assert.Equal([0.3, 1.2, 12.0], decode.Select(d => d.GetProperty("megapixels").GetDouble()));
        Assert.All(decode, d => Assert.True(d.GetProperty("images_per_second").GetDouble() > 0));

        // A piece damaged in transfer, then one left behind: refused before anything is unpacked.
        var second = Path.Combine(host, Path.GetFileName(pieces[1]));
        await using (var stream = new FileStream(second, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Position = 1000;
            var b = stream.ReadByte();
            stream.Position = 1000;
            stream.WriteByte((byte)(b ^ 0xFF));
        }

        var damaged = await ScriptRunner.RunAsync(RunOnHost(""), new Dictionary<string, string>(), TimeSpan.FromMinutes(5), workingDirectory: _work.FullName);
        Assert.NotEqual(0, damaged.ExitCode);
        Assert.Contains("does not match SHA256SUMS", damaged.Error, StringComparison.Ordinal);

        File.Delete(second);
        var missing = await ScriptRunner.RunAsync(RunOnHost(""), new Dictionary<string, string>(), TimeSpan.FromMinutes(5), workingDirectory: _work.FullName);
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains($"missing pieces: {Path.GetFileName(second)}", missing.Error, StringComparison.Ordinal);
    }
}
