using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using Async.Serving.Contracts;

namespace Async.Serving.Cli.Batches;

/// <summary>
/// <c>batch submit --priority</c>: the file's lines with <c>"priority"</c> added to each that names
/// none. A batch line is a job's JSON body, which has a priority of its own; the API has no batch-wide
/// one. Lines are copied while the upload reads them, one line in memory at a time; a line that names
/// a priority, a blank line and a line that is not a JSON object pass unchanged (the API then reports
/// such a line by its number, which stays that of the file).
/// </summary>
public static class BatchLinePriority
{
    /// <summary>The lines of <paramref name="jsonl"/>, rewritten as they are read from the stream answered.</summary>
    public static Stream Apply(Stream jsonl, string priority, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(jsonl);
        if (!JobPriorities.IsValid(priority))
        {
            throw new ArgumentException($"'{priority}' is not low, normal or high.", nameof(priority));
        }

        var pipe = new Pipe();
        // Ends with the upload: its failure reaches the reader, and a reader that stops (the API
        // refused the batch) completes the pipe, which ends the copy.
        _ = CopyAsync(jsonl, pipe.Writer, Encoding.UTF8.GetBytes($"\"priority\":\"{priority}\""), cancellationToken);
        return pipe.Reader.AsStream();
    }

    /// <summary>Where the member goes in <paramref name="line"/> (just after its <c>{</c>) and whether the object is empty; null to leave the line as it is.</summary>
    public static (int At, bool Empty)? InsertionPoint(ReadOnlySpan<byte> line)
    {
        var reader = new Utf8JsonReader(line, new JsonReaderOptions { MaxDepth = 64 });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            var at = (int)reader.BytesConsumed;
            var empty = true;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                empty = false;
                if (reader.ValueTextEquals("priority"u8))
                {
                    return null;
                }

                reader.Read();
                reader.Skip();
            }

            // Anything after the object makes the line invalid: the API's to report.
            while (reader.Read())
            {
            }

            return (at, empty);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static async Task CopyAsync(Stream input, PipeWriter output, byte[] member, CancellationToken cancellationToken)
    {
        var reader = PipeReader.Create(input, new StreamPipeReaderOptions(bufferSize: 64 * 1024, leaveOpen: true));
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                var buffer = result.Buffer;
                while (buffer.PositionOf((byte)'\n') is { } newline)
                {
                    var next = buffer.GetPosition(1, newline);
                    Write(output, buffer.Slice(0, next), member);
                    buffer = buffer.Slice(next);
                }

                if (result.IsCompleted && !buffer.IsEmpty)
                {
                    Write(output, buffer, member);
                    buffer = buffer.Slice(buffer.End);
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
                var flushed = await output.FlushAsync(cancellationToken).ConfigureAwait(false);
                if (result.IsCompleted || flushed.IsCompleted)
                {
                    break;
                }
            }

            await output.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await output.CompleteAsync(ex).ConfigureAwait(false);
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private static void Write(PipeWriter output, ReadOnlySequence<byte> line, byte[] member)
    {
        var rented = line.IsSingleSegment ? null : ArrayPool<byte>.Shared.Rent((int)line.Length);
        try
        {
            ReadOnlySpan<byte> span;
            if (rented is null)
            {
                span = line.FirstSpan;
            }
            else
            {
                line.CopyTo(rented);
                span = rented.AsSpan(0, (int)line.Length);
            }

            if (InsertionPoint(span) is not { } point)
            {
                output.Write(span);
                return;
            }

            output.Write(span[..point.At]);
            output.Write(member);
            if (!point.Empty)
            {
                output.Write(","u8);
            }

            output.Write(span[point.At..]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }
}
